"""A storage SCP on loopback for tests: `start` starts them (each on a free port with its own
spool and an in-memory recorder), `scp` is one that admits the test callers."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.dimse import scu
from agent.dimse.scp import ScpServer, start_scp
from agent.received import ReceivedInstance
from agent.spool import Spool

SCP_AE = "AGENT"
CALLING_AE = "STORESCU"
LOCALHOST = "127.0.0.1"


class MemoryRecorder:
    """Keeps recorded instances in a list, as the job DB would keep rows."""

    def __init__(self) -> None:
        self.instances: list[ReceivedInstance] = []
        self._lock = threading.Lock()

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        with self._lock:
            self.instances.extend(instances)


class RunningScp:
    def __init__(self, server: ScpServer, spool: Spool, recorder: MemoryRecorder) -> None:
        self.server = server
        self.spool = spool
        self.recorder = recorder
        self.port = server.address[1]


StartScp = Callable[..., RunningScp]


@pytest.fixture
def scp_starter(tmp_path: Path) -> Iterator[StartScp]:
    """Starts SCPs on free ports of 127.0.0.1, each with its own spool; stops them after."""
    servers: list[ScpServer] = []

    def _start(**options: Any) -> RunningScp:
        spool, recorder = Spool(tmp_path / f"spool{len(servers)}"), MemoryRecorder()
        server = start_scp(
            ae_title=SCP_AE, address=(LOCALHOST, 0), spool=spool, recorder=recorder, **options
        )
        servers.append(server)
        return RunningScp(server, spool, recorder)

    yield _start
    for server in servers:
        server.shutdown()


@pytest.fixture
def scp(scp_starter: StartScp) -> RunningScp:
    return scp_starter(allowed_peers=[CALLING_AE, scu.DEFAULT_CALLING_AE])


def run_dcmtk(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(tool) is None:
        pytest.skip(f"DCMTK {tool} is not installed")
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def storescu(
    port: int, path: Path, *options: str, calling_ae: str = CALLING_AE
) -> subprocess.CompletedProcess[str]:
    """Run storescu verbosely on a file or folder; it exits non-zero when a store fails."""
    addressing = ("-v", "-aet", calling_ae, "-aec", SCP_AE)
    return run_dcmtk("storescu", *addressing, *options, LOCALHOST, str(port), str(path))


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
