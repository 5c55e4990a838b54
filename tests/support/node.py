"""A node as the tests and benchmarks run it: configuration file, in-process `Node`,
`dicom-agent worker` subprocesses, DCMTK `storescu` to send, and database probes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.config_loading import load_settings
from agent.db.enums import ExportState, JobState, SeriesState
from agent.db.models import Job, Series
from agent.db.queries import get_job
from agent.db.session import session_scope
from agent.serve import Node

REPO = Path(__file__).resolve().parents[2]
SCP_AE = "AGENT"
SCANNER_AE = "SCANNER"
PIPELINE = "lung-nodule-reference"
FLOW_TIMEOUT = 90.0
POLL_SECONDS = 0.05
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_config(
    spool_dir: Path,
    database_url: str,
    destinations: list[dict[str, Any]],
    broker_url: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An `agent.yaml` for a quick node on loopback: CT goes to the reference pipeline and
    to every destination; short completion, reconcile and retry times unless overridden."""
    config: dict[str, Any] = {
        "ae_title": SCP_AE,
        "port": free_port(),
        "spool_dir": str(spool_dir),
        "database_url": database_url,
        "series_stable_seconds": 1,
        "reconcile_interval_seconds": 1,
        "export_backoff_seconds": 0.5,
        "destinations": destinations,
        "rules": [
            {
                "name": "ct-chest",
                "match": {"Modality": "CT"},
                "pipeline": PIPELINE,
                "destinations": [destination["name"] for destination in destinations],
            }
        ],
        "api": {"port": free_port()},
    }
    if broker_url is not None:
        config["broker_url"] = broker_url
    return {**config, **overrides}


@dataclass
class Deployment:
    """One agent configuration: its file (for subprocesses), settings and database, and the
    log files of the subprocesses started for it."""

    config_path: Path
    settings: Settings
    sessions: sessionmaker[Session]
    logs: list[Path] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        """`dicom-agent --config <file> ARGS...` as a command line."""
        return [sys.executable, "-m", "agent.cli", "--config", str(self.config_path), *args]

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs if p.exists())


def write_deployment(
    path: Path, config: dict[str, Any], sessions: sessionmaker[Session]
) -> Deployment:
    """Write `config` to `path` and load it the way the command does."""
    path.write_text(yaml.safe_dump(config))
    return Deployment(path, load_settings(path, {}), sessions)


def clean_environment() -> dict[str, str]:
    """This environment without DICOM_AGENT_* variables, which would override the file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DICOM_AGENT_")}


def run_cli(deployment: Deployment, *args: str) -> str:
    """Run `dicom-agent ARGS...` on the deployment's configuration; its standard output."""
    done = subprocess.run(
        deployment.command(*args),
        cwd=REPO,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Workers:
    """`dicom-agent worker` subprocesses of one deployment, each logging to its own file."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self._deployment.config_path.parent / f"worker{len(self._processes)}.log"
        self._deployment.logs.append(log)
        with log.open("wb") as output:
            process = subprocess.Popen(
                self._deployment.command("worker"),
                cwd=REPO,
                env=clean_environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._processes.append(process)
        return process

    def stop(self) -> None:
        """Ask every worker for a warm shutdown; kill those still running after 30 s."""
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_node(settings: Settings) -> Iterator[Node]:
    """The listener, completion loop and reconciler in this process (no API, no worker)."""
    node = Node(settings, api=False, local_worker=False)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def storescu(port: int, *paths: Path, called_ae: str = SCP_AE) -> None:
    """Send `paths` with DCMTK's storescu in one association; AssertionError if it fails."""
    executable = shutil.which("storescu")
    assert executable is not None, "DCMTK storescu is not installed"
    command = [executable, "-aet", SCANNER_AE, "-aec", called_ae, "127.0.0.1", str(port)]
    done = subprocess.run(
        [*command, *map(str, paths)],
        env={**os.environ, "TCP_NODELAY": "1"},  # without it storescu crawls (Nagle)
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(
    what: str, deployment: Deployment, probe: Callable[[], T | None], timeout: float = FLOW_TIMEOUT
) -> T:
    """Poll `probe` until it returns something truthy; TimeoutError with the subprocesses'
    logs if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"timed out waiting for {what}\n{deployment.log_tails()}")


def the_job(deployment: Deployment, *states: JobState) -> Job | None:
    """The (only) job, once it is in one of `states`."""
    with session_scope(deployment.sessions) as session:
        job = session.scalars(select(Job)).one_or_none()
        return get_job(session, job.id) if job is not None and job.state in states else None


def all_exported(deployment: Deployment) -> Job | None:
    """The (only) job once it failed, or succeeded with every export sent."""
    job = the_job(deployment, JobState.SUCCEEDED, JobState.FAILED)
    if job is None:
        return None
    states = {export.state for result in job.results for export in result.exports}
    return job if job.state == JobState.FAILED or states == {ExportState.SENT} else None


def series_by_number(deployment: Deployment, number: int) -> Series:
    with session_scope(deployment.sessions) as session:
        return session.scalars(select(Series).where(Series.series_number == number)).one()


def series_state(deployment: Deployment, number: int) -> SeriesState | None:
    """The state of series `number`; None until an instance of it is indexed (receivers
    acknowledge an instance once it is on disk and index it a moment later)."""
    with session_scope(deployment.sessions) as session:
        by_number = select(Series.state).where(Series.series_number == number)
        return session.scalars(by_number).one_or_none()
