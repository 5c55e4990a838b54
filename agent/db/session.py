"""Engines and sessions for the job database (SQLite by default, PostgreSQL in production).

SQLite runs in WAL mode with foreign keys on and a busy timeout, so the listener, the API
and a local worker can share one file. The driver's own transaction handling is kept on
purpose: reads run outside a transaction and a write transaction (and its lock) starts at
the first INSERT/UPDATE/DELETE, so concurrent writers wait their turn instead of failing.
Hence no SAVEPOINTs; races on unique keys use INSERT ... ON CONFLICT DO NOTHING instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from sqlite3 import Connection as SQLiteConnection
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from agent.errors import DatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: SQLiteConnection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_db_engine(database_url: str) -> Engine:
    """An engine for `database_url`; for a SQLite file, its folder is created if missing."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (handy for printing results)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    with sessions.begin() as session:
        yield session


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn driver errors (server unreachable, tables missing) into DatabaseError with a hint."""
    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(
            f"database error: {exc.orig}; is it reachable, and did `dicom-agent db upgrade` run?"
        ) from exc


def rows_affected(
    session: Session, statement: Executable, rows: Sequence[dict[str, Any]] | None = None
) -> int:
    """Run an INSERT, UPDATE or DELETE in `session` (once per item of `rows`, if given: one
    compiled statement for all); how many rows it touched.

    `preserve_rowcount`: without it, drivers such as psycopg report -1 for an INSERT.
    """
    options = {"preserve_rowcount": True}
    result = session.execute(statement, rows, execution_options=options)
    return cast("CursorResult[Any]", result).rowcount
