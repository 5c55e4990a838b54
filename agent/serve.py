"""The node `dicom-agent serve` runs: listener, completion loop, reconciler, API, local worker.

`Node.start` brings the database schema up to date, then starts, each in its own thread:
the completion loop (about every second: quiet series become ready, are routed and queued,
and their jobs sent), the reconciler (every `reconcile_interval_seconds`), the HTTP API
(`agent.api.app` under uvicorn); with an embedded broker a local worker subprocess
(`dicom-agent worker`); and last the storage SCP: `dimse_processes` receiver processes
sharing the DICOM port, each acknowledging an instance once it is durably in the spool and
indexing it in the job database a moment later (`agent.dimse.receivers`). The reconciler
loop restarts a receiver or the local worker should one die, and sweeps delivered messages
out of an embedded broker (`workers.broker_janitor`). `Node.stop` stops them in the
reverse order; `serve` runs a node until SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn
from sqlalchemy import Engine

from agent import completion
from agent.api.app import create_app
from agent.config import Settings
from agent.db.migrate import upgrade
from agent.db.session import create_db_engine, session_factory
from agent.dimse.receivers import ReceiverPool
from agent.processes import child_environment
from agent.reconciler import Outbox, Reconciler
from agent.spool import Spool
from workers.broker_janitor import BrokerJanitor
from workers.celery_app import CeleryDispatcher, is_embedded_broker, make_celery

log = logging.getLogger(__name__)

COMPLETION_INTERVAL_SECONDS = 1.0
WORKER_STOP_SECONDS = 30.0
THREAD_STOP_SECONDS = 10.0


class PeriodicThread(threading.Thread):
    """Calls `step` every `interval` seconds until stopped; a failing step is logged with its
    traceback and tried again on the next round."""

    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self._interval = interval
        self._step = step
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._step()
            except Exception:  # the loop must outlive a bad round (database or broker down)
                log.exception("%s failed; trying again in %.1f s", self.name, self._interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join(THREAD_STOP_SECONDS)


class LocalWorker:
    """A `dicom-agent worker` subprocess using the same configuration as this process."""

    def __init__(self, config_path: Path | None) -> None:
        self._config_path = config_path
        self._process: subprocess.Popen[bytes] | None = None

    def ensure_running(self) -> None:
        """Start the worker, or start it again (logged) if it exited."""
        if self._process is not None and self._process.poll() is None:
            return
        if self._process is not None:
            status = self._process.returncode
            log.error("local worker exited with status %s; starting it again", status)
        config = ["--config", str(self._config_path)] if self._config_path else []
        command = [sys.executable, "-m", "agent.cli", *config, "worker"]
        # Its own session: a Ctrl-C at the terminal reaches `serve` only, which stops it.
        self._process = subprocess.Popen(command, env=child_environment(), start_new_session=True)
        log.info("local worker started (pid %d)", self._process.pid)

    def stop(self) -> None:
        """Ask for a warm shutdown (the running task finishes); kill it after a while."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("local worker did not stop in %.0f s; killing it", WORKER_STOP_SECONDS)
            process.kill()
            process.wait()


class ApiThread(threading.Thread):
    """Uvicorn serving the app of `agent.api.app.create_app(settings)`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="api", daemon=True)
        # No access log: query strings (?patient=...) would put patient IDs into the logs.
        config = uvicorn.Config(
            create_app(settings),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
        )
        self._server = uvicorn.Server(config)

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        self._server.should_exit = True
        self.join(THREAD_STOP_SECONDS)


class Node:
    """Everything `serve` runs, startable and stoppable in-process (tests do)."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        api: bool = True,
        local_worker: bool | None = None,
    ) -> None:
        """`local_worker` defaults to whether the broker is embedded."""
        self.settings = settings
        self._with_api = api
        if local_worker is None:
            local_worker = is_embedded_broker(settings.broker_url)
        self._worker = LocalWorker(config_path) if local_worker else None
        self._engine: Engine | None = None
        self._janitor: BrokerJanitor | None = None
        self._receivers: ReceiverPool | None = None
        self._threads: list[PeriodicThread | ApiThread] = []

    @property
    def scp_address(self) -> tuple[str, int]:
        assert self._receivers is not None, "the node is not started"
        return self._receivers.address

    @property
    def receiver_pids(self) -> list[int]:
        """The process ids of the DICOM receivers."""
        assert self._receivers is not None, "the node is not started"
        return self._receivers.pids

    def start(self) -> None:
        """Start every part; if one fails to start, the others are stopped again."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        settings = self.settings
        upgrade(settings.database_url)
        self._engine = create_db_engine(settings.database_url)
        sessions = session_factory(self._engine)
        spool = Spool(settings.spool_dir)
        outbox = Outbox(CeleryDispatcher(make_celery(settings)))
        resend_after = max(settings.job_lease_seconds, settings.reconcile_interval_seconds)
        reconciler = Reconciler(sessions, outbox, resend_after)
        janitor = self._janitor = BrokerJanitor(settings.broker_url)

        def complete() -> None:
            rules, stable = settings.rules, settings.series_stable_seconds
            for job in completion.advance_series(sessions, spool, rules, stable):
                outbox.send_job(job.id, job.priority)

        def reconcile() -> None:
            if self._receivers is not None:
                self._receivers.ensure_running()
            if self._worker is not None:
                self._worker.ensure_running()
            reconciler.tick()
            janitor.sweep()

        if self._worker is not None:
            self._worker.ensure_running()
        self._threads.append(PeriodicThread("completion", COMPLETION_INTERVAL_SECONDS, complete))
        self._threads.append(
            PeriodicThread("reconciler", settings.reconcile_interval_seconds, reconcile)
        )
        if self._with_api:
            self._threads.append(ApiThread(settings))
        for thread in self._threads:
            thread.start()
        self._receivers = ReceiverPool(settings)
        self._receivers.start()

    def stop(self) -> None:
        """Stop receiving first, then the loops and the API, then the local worker."""
        if self._receivers is not None:
            self._receivers.stop()
            self._receivers = None
        for thread in reversed(self._threads):
            thread.stop()
        self._threads.clear()
        if self._worker is not None:
            self._worker.stop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._janitor is not None:
            self._janitor.close()
            self._janitor = None
        log.info("node stopped")


def serve(settings: Settings, config_path: Path | None = None) -> None:
    """Run a node until SIGINT or SIGTERM, then stop it cleanly."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node = Node(settings, config_path=config_path)
    node.start()
    log.info("serving; SIGINT or SIGTERM stops")
    try:
        stopping.wait()
    finally:
        node.stop()
