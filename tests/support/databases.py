"""Throwaway job databases and an emptied Redis database, for tests and benchmarks."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis
from psycopg import sql
from sqlalchemy import Engine, text

from agent.db.migrate import upgrade
from agent.db.models import Base

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"


def postgres_unreachable() -> str | None:
    """None if something listens on the PostgreSQL port, else why not."""
    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=3).close()
    except OSError as exc:
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {exc}"
    return None


@contextmanager
def throwaway_postgres(prefix: str = "agent_test") -> Iterator[str]:
    """The URL of a migrated, uniquely named database, dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_tables(engine: Engine) -> None:
    """Delete every row of a PostgreSQL job database, identities restarting at 1."""
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def emptied_redis(url: str) -> str:
    """`url` after emptying its Redis database; redis.ConnectionError if it is not reachable."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url
