"""One async engine per process, configured so SQLite behaves under concurrent writers."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

__all__ = ["READ_ONLY", "create_engine", "create_session_factory", "is_sqlite", "json_dumps"]

# Execution option for connections that only read: on SQLite they skip the write lock.
READ_ONLY = "opsgate_read_only"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def json_dumps(value: Any) -> str:
    """How JSON columns are written (orjson); also used where a statement bypasses the types."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """SQLite: WAL, busy timeout and BEGIN IMMEDIATE so writers queue instead of failing late.

    pysqlite's own transaction handling is switched off so that our BEGIN IMMEDIATE takes the
    write lock up front; a deferred transaction that reads then writes can otherwise fail with
    "database is locked" when another writer got in between.
    """
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": 30, **kwargs.get("connect_args", {})}
        engine = create_async_engine(url, echo=echo, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Readers that never write (audit verify and export) must not queue writers behind
            # them for the length of a long scan: theirs is a plain deferred BEGIN.
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_async_engine(url, echo=echo, **kwargs)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
