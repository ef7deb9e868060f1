"""A throw-away PostgreSQL database per benchmark run, at 127.0.0.1:5432 (superuser, trust)."""

from __future__ import annotations

import os

SERVER = "postgresql://postgres@127.0.0.1:5432"


async def create_pg_database(prefix: str = "opsgate_bench") -> str:
    """Create `<prefix>_<pid>` (dropping a leftover of that name) and return its SQLAlchemy URL."""
    import asyncpg

    name = f"{prefix}_{os.getpid()}"
    conn = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()
