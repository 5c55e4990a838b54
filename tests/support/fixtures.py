"""Fixtures over `tests.support`: job databases on each backend, and a node with workers.

`database_url` runs a test on SQLite (a file per test) and on PostgreSQL (one throwaway
database per session, emptied after each test). Beside PostgreSQL the node uses Redis
(database REDIS_DB of 127.0.0.1:6379, emptied first), beside SQLite the embedded broker.
A test module chooses where results go by overriding `destinations`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent.db.migrate import upgrade
from agent.db.session import create_db_engine, session_factory
from agent.serve import Node
from tests.support.databases import (
    emptied_redis,
    empty_tables,
    postgres_unreachable,
    throwaway_postgres,
)
from tests.support.node import (
    Deployment,
    Workers,
    free_port,
    node_config,
    running_node,
    write_deployment,
)

REDIS_URL = "redis://127.0.0.1:6379/14"
LEASE_SECONDS = 6


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated, uniquely named database, dropped when the test session ends."""
    unreachable = postgres_unreachable()
    if unreachable:
        pytest.skip(unreachable)
    with throwaway_postgres() as url:
        yield url


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
        empty_tables(engine)
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def broker_url(database_url: str) -> str | None:
    """Redis (emptied) beside PostgreSQL; None (the embedded default) beside SQLite."""
    if not database_url.startswith("postgresql"):
        return None
    try:
        return emptied_redis(REDIS_URL)
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")


@pytest.fixture
def scp_port() -> int:
    """The port the node listens on."""
    return free_port()


@pytest.fixture
def destinations(tmp_path: Path) -> list[dict[str, Any]]:
    """Where the node sends results: the folder destination `out` (tmp_path/out)."""
    return [{"kind": "folder", "name": "out", "path": str(tmp_path / "out")}]


@pytest.fixture
def deployment(
    database_url: str,
    broker_url: str | None,
    sessions: sessionmaker[Session],
    scp_port: int,
    destinations: list[dict[str, Any]],
    tmp_path: Path,
) -> Deployment:
    config = node_config(
        tmp_path / "spool",
        database_url,
        destinations,
        broker_url,
        port=scp_port,
        job_lease_seconds=LEASE_SECONDS,
    )
    return write_deployment(tmp_path / "agent.yaml", config, sessions)


@pytest.fixture
def start_worker(deployment: Deployment) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `dicom-agent worker` subprocesses (output in a log each); stops them after."""
    workers = Workers(deployment)
    yield workers.start
    workers.stop()


@pytest.fixture
def node(deployment: Deployment) -> Iterator[Node]:
    """The listener, completion loop and reconciler in this process (no API, no worker)."""
    with running_node(deployment.settings) as running:
        yield running
