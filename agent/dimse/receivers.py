"""Receiving processes: several storage SCPs accepting from one listening socket.

Python runs one thread at a time per process (the GIL), so one process receives about one
core's worth of C-STOREs. The node binds the DICOM port itself and starts `dimse_processes`
receivers, each a process of its own (`python -m agent.dimse.receivers`, which imports only
what receiving needs) with its own SCP, spool writer and database engine, all accepting from that
socket, the least busy first (`agent.dimse.scp`). SQLite in WAL mode and PostgreSQL both
take their concurrent writes.

A receiver acknowledges an instance once its file is durable in the spool and indexes it
a moment later in a batch (`agent.indexer`). The node hands it its settings through its
stdin and keeps that pipe open: the receiver stops when the pipe closes (the node is gone)
and on SIGTERM; open associations get `RECEIVER_STOP_SECONDS` to finish, then what is
queued gets indexed. Receivers run in a session of their own, so a Ctrl-C at the terminal
reaches only the node, which stops them. The node replaces a receiver that died
(`ensure_running`) and re-indexes the spool then, and at start when the receivers of the
last run did not all stop cleanly (the `RUNNING_MARKER` file is still there), so every
acknowledged instance gets its index row.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

from agent.config import Settings
from agent.db.recorder import DatabaseRecorder
from agent.db.session import create_db_engine, session_factory
from agent.dimse.scp import listen, start_scp
from agent.dimse.tls import scp_tls_context
from agent.errors import ReceiverStartError
from agent.indexer import BackgroundIndexer
from agent.logs import configure_logging
from agent.processes import child_environment
from agent.reindex import reindex_spool
from agent.spool import Spool, fsync_dir

LOGGER = logging.getLogger(__name__)

RECEIVER_STOP_SECONDS = 10.0
"""How long open associations may run on after a receiver is told to stop."""
START_TIMEOUT_SECONDS = 60.0
EXIT_UNINDEXED = 3
RUNNING_MARKER = "receivers.running"
"""In the spool while receivers run; found at start, it means they did not stop cleanly."""
_READY = b"ready\n"


@dataclass(frozen=True)
class ReceiverOrders:
    """What the node sends a receiver: its settings and the descriptors it inherits."""

    settings: Settings
    listener_fd: int
    ready_fd: int
    log_level: int


def run_receiver(orders: ReceiverOrders) -> int:
    """A receiver: serve until SIGTERM or until the node closes our stdin; the exit status
    (`EXIT_UNINDEXED` when acknowledged instances were left unindexed)."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    threading.Thread(target=_watch_node, args=(stopping,), daemon=True).start()
    settings = orders.settings
    configure_logging(settings, orders.log_level)
    engine = create_db_engine(settings.database_url)
    indexer = BackgroundIndexer(DatabaseRecorder(session_factory(engine)))
    indexer.start()
    try:
        scp = start_scp(
            ae_title=settings.ae_title,
            address=socket.socket(fileno=orders.listener_fd),
            spool=Spool(settings.spool_dir),
            recorder=indexer,
            allowed_peers=settings.allowed_peers,
            tls_context=scp_tls_context(settings.tls),
            log_phi=settings.log_phi,
        )
        with os.fdopen(orders.ready_fd, "wb") as ready:
            ready.write(_READY)
        stopping.wait()
        scp.shutdown(RECEIVER_STOP_SECONDS)
    finally:
        indexed = indexer.stop()
        engine.dispose()
    return 0 if indexed else EXIT_UNINDEXED


def _watch_node(stopping: threading.Event) -> None:
    """Stop when stdin, the node's end of which only the node holds, reaches end of file.

    Read with `os.read`: a thread blocked in `sys.stdin` would hold its lock at exit."""
    while os.read(sys.stdin.fileno(), 4096):
        pass
    if not stopping.is_set():
        LOGGER.warning("the node process is gone; stopping this receiver")
        stopping.set()


class ReceiverPool:
    """The node's receiver processes and the socket they share."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._listener: socket.socket | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._marker = settings.spool_dir / RUNNING_MARKER

    @property
    def address(self) -> tuple[str, int]:
        """The listening host and port (the real port when configured with port 0)."""
        assert self._listener is not None, "the receivers are not started"
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def pids(self) -> list[int]:
        """The receiver processes' ids."""
        with self._lock:
            return [process.pid for process in self._processes]

    def start(self) -> None:
        """Re-index if the last receivers did not stop cleanly, listen, start the receivers
        and wait until each one serves. Raises `ReceiverStartError` if one exits or hangs."""
        self._settings.spool_dir.mkdir(parents=True, exist_ok=True)
        if self._marker.exists():
            LOGGER.warning("the receivers did not stop cleanly last time; re-indexing the spool")
            self._reindex()
        self._marker.touch()
        fsync_dir(self._marker.parent)
        self._listener = listen(self._settings.host, self._settings.port)
        with self._lock:
            for _ in range(self._settings.dimse_processes):
                self._processes.append(self._spawn())
        LOGGER.info(
            "receiver processes %s serving DICOM on %s:%d",
            ", ".join(map(str, self.pids)),
            *self.address,
        )

    def ensure_running(self) -> None:
        """Replace receivers that died (logged), then index what they left unindexed."""
        with self._lock:
            if self._stopped:
                return
            dead = [i for i, process in enumerate(self._processes) if process.poll() is not None]
            for index in dead:
                process = self._processes[index]
                LOGGER.error(
                    "receiver process %d exited with %s; starting another",
                    process.pid,
                    process.returncode,
                )
                self._processes[index] = self._spawn()
        if dead:
            self._reindex()

    def stop(self) -> None:
        """SIGTERM every receiver, wait for them to finish, kill stragglers, stop listening.

        The running marker goes only if every receiver exited cleanly (all indexed). Calling
        it again does nothing."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            processes, self._processes = self._processes, []
        for process in processes:
            process.terminate()
        for process in processes:
            _wait_or_kill(process)
        if self._listener is not None:
            self._listener.close()
        if all(process.returncode == 0 for process in processes):
            self._marker.unlink(missing_ok=True)

    def _reindex(self) -> None:
        engine = create_db_engine(self._settings.database_url)
        try:
            reindex_spool(Spool(self._settings.spool_dir), session_factory(engine))
        finally:
            engine.dispose()

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start one receiver and wait until it serves."""
        assert self._listener is not None
        ready, ready_in_child = os.pipe()
        orders = ReceiverOrders(
            self._settings,
            self._listener.fileno(),
            ready_in_child,
            logging.getLogger().getEffectiveLevel(),
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                pass_fds=(orders.listener_fd, ready_in_child),
                env=child_environment(),
                start_new_session=True,
            )
        finally:
            os.close(ready_in_child)
        try:
            _send_orders(process, orders)
            _wait_until_ready(process, ready)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            os.close(ready)
        return process


def _send_orders(process: subprocess.Popen[bytes], orders: ReceiverOrders) -> None:
    """Pickle the orders into the receiver's stdin and keep the pipe open (see `_watch_node`)."""
    assert process.stdin is not None
    process.stdin.write(pickle.dumps(orders))
    process.stdin.flush()


def _wait_until_ready(process: subprocess.Popen[bytes], ready: int) -> None:
    readable, _, _ = select.select([ready], [], [], START_TIMEOUT_SECONDS)
    if not readable:
        raise ReceiverStartError(f"not serving after {START_TIMEOUT_SECONDS:.0f} s")
    if os.read(ready, len(_READY)) != _READY:  # end of file: it exited
        raise ReceiverStartError(f"exited with {process.wait()} while starting")


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(RECEIVER_STOP_SECONDS + 5.0)
    except subprocess.TimeoutExpired:
        LOGGER.warning("receiver process %d did not stop; killing it", process.pid)
        process.kill()
        process.wait()
    if process.stdin is not None:
        process.stdin.close()


if __name__ == "__main__":
    sys.exit(run_receiver(pickle.load(sys.stdin.buffer)))
