"""The whole product path with real peers: DCMTK storescu -> SCP -> completion and routing ->
Celery worker subprocess -> SEG + SR in a folder destination; and a worker killed mid-job.

Each backend pair runs: SQLite with the embedded broker (Kombu's SQLAlchemy transport), and
PostgreSQL with Redis (database REDIS_DB of 127.0.0.1:6379, emptied before each test).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import yaml
from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings, load_settings
from agent.db.enums import ExportState, JobState, SeriesState
from agent.db.models import Job, Series
from agent.db.queries import get_job
from agent.db.session import session_scope
from agent.jobs import parse_stage
from agent.serve import Node
from models.reference.dicom_series import SeriesIdentity, write_series
from models.reference.phantom import Geometry, generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/14"
SCP_AE = "AGENT"
LEASE_SECONDS = 6
FLOW_TIMEOUT = 90.0
WORKER_STARTED = re.compile(r"local worker started \(pid (?P<pid>\d+)\)")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small chest CT series (40 slices of 256 x 256) with two nodules."""
    phantom = generate(7, Geometry(256, 1.4, 2.5, 40), nodule_count=2, window=(110.0, 210.0))
    return write_series(phantom, tmp_path_factory.mktemp("ct"), SeriesIdentity(series_number=2))


@pytest.fixture(scope="module")
def localizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One slice of another series of the same study: a localizer, not a volume."""
    phantom = generate(7, Geometry(256, 1.4, 2.5, 2), nodule_count=0, window=(110.0, 115.0))
    paths = write_series(phantom, tmp_path_factory.mktemp("loc"), SeriesIdentity(series_number=1))
    return paths[0]


@dataclass
class Deployment:
    """One agent configuration: its file (for subprocesses), settings and database."""

    config_path: Path
    settings: Settings
    sessions: sessionmaker[Session]
    out_dir: Path
    logs: list[Path]

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs if p.exists())


def _broker_url(database_url: str) -> str | None:
    """Redis beside PostgreSQL (emptied first); None (the embedded default) beside SQLite."""
    if not database_url.startswith("postgresql"):
        return None
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def deployment(database_url: str, sessions: sessionmaker[Session], tmp_path: Path) -> Deployment:
    config: dict[str, Any] = {
        "ae_title": SCP_AE,
        "port": free_port(),
        "spool_dir": str(tmp_path / "spool"),
        "database_url": database_url,
        "series_stable_seconds": 1,
        "reconcile_interval_seconds": 1,
        "job_lease_seconds": LEASE_SECONDS,
        "export_backoff_seconds": 0.5,
        "destinations": [{"kind": "folder", "name": "out", "path": str(tmp_path / "out")}],
        "rules": [
            {
                "name": "ct-chest",
                "match": {"Modality": "CT"},
                "pipeline": "lung-nodule-reference",
                "destinations": ["out"],
            }
        ],
        "api": {"port": free_port()},
    }
    broker = _broker_url(database_url)
    if broker is not None:
        config["broker_url"] = broker
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path, {})
    return Deployment(path, settings, sessions, tmp_path / "out", [])


def agent_command(deployment: Deployment, *args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", "--config", str(deployment.config_path), *args]


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DICOM_AGENT_")}


@pytest.fixture
def start_worker(deployment: Deployment) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `dicom-agent worker` subprocesses (output in a log each); stops them after."""
    workers: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = deployment.config_path.parent / f"worker{len(workers)}.log"
        deployment.logs.append(log)
        with log.open("wb") as output:
            worker = subprocess.Popen(
                agent_command(deployment, "worker"),
                cwd=REPO,
                env=clean_environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture
def node(deployment: Deployment) -> Iterator[Node]:
    """The listener, completion loop and reconciler in this process (no API, no worker)."""
    running = Node(deployment.settings, api=False, local_worker=False)
    running.start()
    yield running
    running.stop()


def storescu(port: int, *paths: Path) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("DCMTK storescu is not installed")
    command = ["storescu", "-aet", "SCANNER", "-aec", SCP_AE, "127.0.0.1", str(port)]
    done = subprocess.run(
        [*command, *map(str, paths)],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(what: str, deployment: Deployment, probe: Callable[[], T | None]) -> T:
    """Poll `probe` until it returns something; fail with the subprocesses' logs if it does
    not within FLOW_TIMEOUT seconds."""
    deadline = time.monotonic() + FLOW_TIMEOUT
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n{deployment.log_tails()}")


def the_job(deployment: Deployment, *states: JobState) -> Job | None:
    """The (only) job, once it is in one of `states`."""
    with session_scope(deployment.sessions) as session:
        job = session.scalars(select(Job)).one_or_none()
        return get_job(session, job.id) if job is not None and job.state in states else None


def all_exported(deployment: Deployment) -> Job | None:
    job = the_job(deployment, JobState.SUCCEEDED, JobState.FAILED)
    if job is None:
        return None
    states = {export.state for result in job.results for export in result.exports}
    return job if job.state == JobState.FAILED or states == {ExportState.SENT} else None


def series_by_number(deployment: Deployment, number: int) -> Series:
    with session_scope(deployment.sessions) as session:
        return session.scalars(select(Series).where(Series.series_number == number)).one()


def assert_results_in_folder(deployment: Deployment, job: Job) -> None:
    assert job.state == JobState.SUCCEEDED, job.error
    (seg,) = deployment.out_dir.glob("*/seg-*/*.dcm")
    (sr,) = deployment.out_dir.glob("*/sr-*/*.dcm")
    assert dcmread(seg).Modality == "SEG"
    assert dcmread(sr).Modality == "SR"
    stages = [parse_stage(event.message) for event in job.events]
    assert [stage[0] for stage in stages if stage][-3:] == ["load", "infer", "encode"]


def test_series_in_results_out(
    deployment: Deployment,
    node: Node,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    ct_files: list[Path],
    localizer: Path,
) -> None:
    start_worker()
    storescu(node.scp_address[1], *ct_files, localizer)

    job = wait_for("the job and its exports", deployment, lambda: all_exported(deployment))

    assert_results_in_folder(deployment, job)
    assert job.attempts == 1
    assert series_by_number(deployment, 2).state == SeriesState.DONE
    skipped = series_by_number(deployment, 1)
    assert skipped.state == SeriesState.SKIPPED
    assert skipped.skip_reason == "not a volume: a volume needs at least 2 slices, got 1"


def test_job_of_a_killed_worker_is_taken_over(
    deployment: Deployment,
    node: Node,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    ct_files: list[Path],
) -> None:
    first = start_worker()
    storescu(node.scp_address[1], *ct_files)
    wait_for("the job to run", deployment, lambda: the_job(deployment, JobState.RUNNING))
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker()

    job = wait_for("the job and its exports", deployment, lambda: all_exported(deployment))

    assert_results_in_folder(deployment, job)
    assert job.attempts == 2
    assert any(event.message.startswith("lease ran out; reclaimed") for event in job.events)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_runs_a_local_worker_and_stops_cleanly(
    deployment: Deployment, localizer: Path
) -> None:
    log = deployment.config_path.parent / "serve.log"
    deployment.logs.append(log)
    with log.open("wb") as output:
        serve = subprocess.Popen(
            agent_command(deployment, "serve"),
            cwd=REPO,
            env=clean_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        started = wait_for(
            "the local worker", deployment, lambda: WORKER_STARTED.search(log.read_text())
        )
        wait_for("the listener", deployment, lambda: "serving;" in log.read_text())
        storescu(deployment.settings.port, localizer)
        wait_for(
            "the localizer to be skipped",
            deployment,
            lambda: series_by_number(deployment, 1).state == SeriesState.SKIPPED,
        )
        studies = subprocess.run(
            agent_command(deployment, "studies", "list", "--series"),
            cwd=REPO,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
        assert "skipped  1          not a volume: a volume needs at least 2" in studies.stdout
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, deployment.log_tails()
    finally:
        serve.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(int(started["pid"]), 0)
    assert "node stopped" in log.read_text()
