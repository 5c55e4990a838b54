"""The node's receiver processes with real peers: DCMTK storescu associations in parallel
land in the spool and the job database exactly once, and no receiver outlives its node."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.db.models import Instance, Series
from agent.db.session import session_scope
from agent.dimse import scu
from agent.dimse.receivers import RUNNING_MARKER, ReceiverPool
from agent.errors import PeerUnreachableError
from models.reference.dicom_series import write_series
from models.reference.phantom import Geometry, generate
from tests.support.node import REPO, SCP_AE, clean_environment, free_port, storescu
from tests.support.scp import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLICES = 48
SENDERS = 4
STOP_SECONDS = 15.0


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small CT series: 48 slices of 64 x 64."""
    phantom = generate(11, Geometry(64, 5.0, 5.0, SLICES), nodule_count=0)
    return write_series(phantom, tmp_path_factory.mktemp("ct"))


def receiver_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        ae_title=SCP_AE,
        port=free_port(),
        spool_dir=tmp_path / "spool",
        database_url=database_url,
        dimse_processes=2,
    )


@pytest.fixture
def receivers(tmp_path: Path, database_url: str) -> Iterator[ReceiverPool]:
    pool = ReceiverPool(receiver_settings(tmp_path, database_url))
    pool.start()
    yield pool
    pool.stop()


def send_in_parallel(port: int, shares: list[list[Path]]) -> None:
    """Each share over its own storescu association, all at once."""
    with ThreadPoolExecutor(len(shares)) as pool:
        list(pool.map(lambda share: storescu(port, *share), shares))


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def count_rows(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(index rows, the series' instance count); zeros before the first row."""
    with session_scope(sessions) as session:
        rows = session.scalar(select(func.count(Instance.id))) or 0
        return rows, session.scalar(select(Series.instance_count)) or 0


def test_parallel_associations_land_once_each(
    receivers: ReceiverPool, ct_files: list[Path], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    shares = [ct_files[i::SENDERS] for i in range(SENDERS)]
    resend = ct_files[:10]  # the same instances again, at the same time

    send_in_parallel(receivers.address[1], [*shares, resend])

    spool = tmp_path / "spool"
    assert sorted(path.name for path in (spool / "tmp").iterdir()) == []
    assert len(list((spool / "instances").rglob("*.dcm"))) == SLICES
    # Acknowledged once the file is durable; the index row follows within moments.
    assert wait_until(lambda: count_rows(sessions) == (SLICES, SLICES), STOP_SECONDS)


def test_stop_ends_every_receiver_and_the_listening(
    tmp_path: Path, database_url: str, ct_files: list[Path]
) -> None:
    pool = ReceiverPool(receiver_settings(tmp_path, database_url))
    pool.start()
    port, pids = pool.address[1], pool.pids
    storescu(port, *ct_files[:3])

    pool.stop()

    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(PeerUnreachableError):
        scu.echo(SCP_AE, "127.0.0.1", port)


def test_a_dead_receiver_is_replaced(receivers: ReceiverPool, ct_files: list[Path]) -> None:
    dead, survivor = receivers.pids

    os.kill(dead, signal.SIGKILL)

    def replaced() -> bool:
        receivers.ensure_running()  # what the node's reconciler loop calls on each round
        return dead not in receivers.pids

    assert wait_until(replaced, STOP_SECONDS)
    assert survivor in receivers.pids
    assert len(receivers.pids) == 2
    storescu(receivers.address[1], *ct_files[:3])


def test_acknowledged_instances_survive_a_receiver_crash(
    receivers: ReceiverPool, ct_files: list[Path], sessions: sessionmaker[Session]
) -> None:
    send_in_parallel(receivers.address[1], [ct_files[i::SENDERS] for i in range(SENDERS)])
    killed = receivers.pids
    for pid in killed:  # right after the last acknowledgement: rows may be missing
        os.kill(pid, signal.SIGKILL)

    def replaced() -> bool:
        receivers.ensure_running()  # replaces the dead and re-indexes the spool
        return not set(killed) & set(receivers.pids)

    assert wait_until(replaced, STOP_SECONDS)
    assert count_rows(sessions) == (SLICES, SLICES)


def test_a_start_after_an_unclean_stop_reindexes(
    tmp_path: Path, database_url: str, ct_files: list[Path], sessions: sessionmaker[Session]
) -> None:
    settings = receiver_settings(tmp_path, database_url)
    pool = ReceiverPool(settings)
    pool.start()
    storescu(pool.address[1], *ct_files)
    marker = settings.spool_dir / RUNNING_MARKER
    assert marker.exists()
    pool.stop()
    assert not marker.exists()  # a clean stop: everything indexed
    with session_scope(sessions) as session:  # as if the receivers had died before indexing
        session.execute(delete(Instance))
    marker.touch()  # ... and the node with them

    pool = ReceiverPool(settings)
    pool.start()
    pool.stop()

    assert count_rows(sessions)[0] == SLICES


def serve_process(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int], list[int]]:
    """`dicom-agent serve` (Redis as broker: no local worker), its receivers' ids (from its
    log) and the ids of all its child processes (multiprocessing's helpers included)."""
    config = {
        "ae_title": SCP_AE,
        "port": free_port(),
        "spool_dir": str(tmp_path / "spool"),
        "broker_url": "redis://127.0.0.1:6379/15",
        "dimse_processes": 2,
        "api": {"port": free_port()},
    }
    path, log = tmp_path / "agent.yaml", tmp_path / "serve.log"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "agent.cli", "--config", str(path), "serve"]
    with log.open("wb") as output:
        serve = subprocess.Popen(command, cwd=REPO, env=clean_environment(), stderr=output)
    assert wait_until(lambda: "serving;" in log.read_text(), 60), log.read_text()
    started = RECEIVERS_STARTED.search(log.read_text())
    assert started is not None
    receivers = [int(pid) for pid in started["pids"].split(", ")]
    return serve, receivers, child_pids(serve.pid)


RECEIVERS_STARTED = re.compile(r"receiver processes (?P<pids>[\d, ]+) serving DICOM")


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (Linux: /proc/PID/task/TID/children)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sorted(int(child) for task in tasks for child in (task / "children").read_text().split())


def test_sigterm_to_serve_stops_its_receivers(tmp_path: Path) -> None:
    serve, receivers, children = serve_process(tmp_path)

    serve.send_signal(signal.SIGTERM)

    assert serve.wait(60) == 0
    assert len(receivers) == 2
    assert set(receivers) <= set(children)
    assert wait_until(lambda: not any(alive(pid) for pid in children), STOP_SECONDS)


def test_receivers_stop_when_their_node_is_killed(tmp_path: Path) -> None:
    serve, receivers, children = serve_process(tmp_path)

    serve.kill()
    serve.wait(10)

    assert len(receivers) == 2
    assert set(receivers) <= set(children)
    assert wait_until(lambda: not any(alive(pid) for pid in children), STOP_SECONDS)
