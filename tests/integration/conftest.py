"""Real databases for integration tests: a SQLite file per test, and one throwaway
PostgreSQL database per test session (127.0.0.1:5432, user postgres), emptied after each test.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from agent.db.migrate import upgrade
from agent.db.models import Base
from agent.db.session import create_db_engine, session_factory

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"


def _postgres_reachable() -> str | None:
    """None if something listens on the PostgreSQL port, else why not."""
    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=3).close()
    except OSError as exc:
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated, uniquely named database, dropped when the test session ends."""
    unreachable = _postgres_reachable()
    if unreachable:
        pytest.skip(unreachable)
    name = f"agent_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _empty_tables(engine: Engine) -> None:
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated job database, on each backend in turn."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    if engine.dialect.name == "postgresql":
        _empty_tables(engine)
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
