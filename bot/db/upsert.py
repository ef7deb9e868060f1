"""One way to write "insert, unless it is already there" on both supported databases.

SQLite and PostgreSQL share the `ON CONFLICT` syntax but SQLAlchemy exposes it per dialect;
`insert_into` picks the session's dialect so callers write `on_conflict_do_nothing(...)` /
`on_conflict_do_update(...)` once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["insert_into"]


def insert_into(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for `table` in the session's dialect, with its ON CONFLICT clauses available."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
