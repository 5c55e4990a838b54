"""Real databases for integration tests: a SQLite file per test, and one throwaway
PostgreSQL database per test session (127.0.0.1:5432, user postgres), emptied after each test.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.db.migrate import upgrade
from agent.db.models import Base, Series
from agent.db.queries import record_instance
from agent.db.session import create_db_engine, session_factory, session_scope
from agent.received import ReceivedInstance

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"

MakeReceived = Callable[..., ReceivedInstance]
SeedJobs = Callable[[sessionmaker[Session]], list[int]]


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


@pytest.fixture
def seed_jobs(make_received: MakeReceived) -> SeedJobs:
    """Adds two jobs to a migrated database and returns their ids: first a failed one
    (patient P1, accession ACC-0, priority 0), then a queued one (P2, ACC-1, priority 1)."""

    def seed(sessions: sessionmaker[Session]) -> list[int]:
        with session_scope(sessions) as session:
            created = []
            for n, patient in enumerate(["P1", "P2"]):
                received = make_received(
                    study_instance_uid=f"1.{n}",
                    series_instance_uid=f"1.{n}.1",
                    patient_id=patient,
                    accession_number=f"ACC-{n}",
                )
                record_instance(session, received)
                uid_is = Series.series_instance_uid == received.series_instance_uid
                series = session.scalars(select(Series).where(uid_is)).one()
                created.append(
                    jobs.create_job(session, series, pipeline="lung", rule="ct", priority=n)
                )
            jobs.claim_job(session, created[0].id, "w1", 600)
            jobs.fail_job(session, created[0], "w1", "model crashed")
            return [job.id for job in created]

    return seed
