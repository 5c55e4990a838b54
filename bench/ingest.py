"""Ingest throughput: the same CT study into DCMTK's storescp and into this node's SCP.

    .venv/bin/python -m bench.ingest [--associations 4] [--rounds 3] [--processes N]
                                     [--database sqlite|postgresql] [--with-pynetdicom]
                                     [--with-spool]

The study: a 300-slice 512 x 512 CT (0.7 mm pixels, 1 mm slices, two nodules), written once
and cached under scratch/bench/ingest/. Each round sends it to each receiver with
`--associations` DCMTK storescu processes in parallel, each sending its share of the files
over one association (TCP_NODELAY=1 for every DCMTK process: Nagle's algorithm stalls them),
timed from the first storescu's start to the last one's exit; a receiver's rate is its
median round. The receivers:

- storescp: `storescp --fork` (a process per association) writing into a scratch folder,
  without fsync. After its round, untimed, the bench syncs its files (so that the kernel's
  write-back does not fall into the next receiver's round) and drops them from the page
  cache: on this VM storescp slowed from ~1,800 to ~850 images/s over seven rounds as the
  page cache grew by its 157 MB a round (memory the guest had not touched yet costs it a
  fault into the host), and since the node writes around the page cache, that alone lifted
  the ratio from about 0.48 to 0.6-0.9. With the eviction, seven rounds of storescp in one
  run: 1,228 images/s, then 1,771-1,933.
- the node: `Node` as `dicom-agent serve` starts it, less the API and the local worker
  (idle while receiving): `--processes` receiver processes (default: the `dimse_processes`
  default) on a fresh spool and job database each round (embedded SQLite, or a throwaway
  PostgreSQL database). It answers Success only once the file and its name are fsynced;
- with `--with-pynetdicom`, for reference: pynetdicom out of the box in one process,
  answering Success to every C-STORE without writing anything;
- with `--with-spool`, for reference: no network and no DICOM at all, `--associations`
  threads of this process writing the study's files through `Spool.store` (the node's
  durable write: tmp file, fsync, rename, directory fsync). What the disk allows any
  receiver that acknowledges only durable instances.

Rounds write under scratch/bench/ingest-run/ and nothing there is
deleted until the last round is done. On ext4 without a journal (this VM's root filesystem)
a new inode skips every inode deleted in the last minute (up to five), a buffer lookup each
(`recently_deleted` in fs/ext4/ialloc.c), so deleting a round's ~900 files just before the
next round made every file created then cost more kernel CPU: the node (which creates each
file in one shared `tmp/` directory) measured 459 images/s at 3.1 ms of receiver CPU per
image right after such a deletion and 622 at 2.1 ms a minute later (`perf` put ~25 % of the
receivers' samples in that scan). A node in service does not delete files by the thousand
just before a study arrives. Run the bench a few minutes after anything deleted many files.

Every round checks that storescp and the node got every file (and the node indexed each
once). Prints images/s for each, the ratio node/storescp and the CPU milliseconds per image
the senders and receivers used; writes scratch/bench/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from agent.config import Settings
from agent.db.models import Instance
from agent.db.session import create_db_engine, session_factory, session_scope
from agent.spool import Spool
from models.reference.phantom import Geometry
from tests.support.databases import throwaway_postgres
from tests.support.node import free_port, running_node
from tests.support.studies import write_ct_study

SCRATCH = Path("scratch/bench")
STUDY_DIR = SCRATCH / "ingest"
RUN_DIR = SCRATCH / "ingest-run"
OUTPUT = SCRATCH / "ingest.json"
GEOMETRY = Geometry(512, 0.7, 1.0, 300)
SEED = 4_000_002
NODULES = 2
NODE_AE, STORESCP_AE, SENDER_AE = "AI_AGENT", "STORESCP", "BENCH"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
SEND_TIMEOUT = 600.0


def study_files() -> list[Path]:
    """The cached study's files, written first if missing."""
    files = sorted((STUDY_DIR / "ct").glob("*.dcm"))
    if len(files) != GEOMETRY.slices:
        shutil.rmtree(STUDY_DIR, ignore_errors=True)
        files = write_ct_study(STUDY_DIR, SEED, GEOMETRY, nodule_count=NODULES, localizer=False).ct
    return files


def send(files: list[Path], port: int, called_ae: str, associations: int) -> float:
    """Send `files` split over `associations` storescu processes at once; the seconds taken."""
    shares = [files[i::associations] for i in range(associations)]
    started = time.perf_counter()
    senders = [
        subprocess.Popen(
            ["storescu", "-aet", SENDER_AE, "-aec", called_ae, "127.0.0.1", str(port), *share],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for share in shares
    ]
    failures = [sender.communicate(timeout=SEND_TIMEOUT)[1] for sender in senders]
    elapsed = time.perf_counter() - started
    for sender, stderr in zip(senders, failures, strict=True):
        if sender.returncode != 0:
            raise RuntimeError(f"storescu failed ({sender.returncode}): {stderr.decode()[-2000:]}")
    return elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def running_storescp(output: Path) -> Iterator[int]:
    """storescp forking a process per association, storing into `output`; yields its port."""
    output.mkdir(parents=True)
    port = free_port()
    command = ["storescp", "--fork", "-aet", STORESCP_AE, "-od", str(output), str(port)]
    server = subprocess.Popen(command, env=DCMTK_ENV, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port)
        yield port
    finally:
        server.terminate()
        server.wait(30)


BARE_PYNETDICOM = (
    "import sys; from pynetdicom import AE, AllStoragePresentationContexts, evt; "
    "ae = AE('BARE'); ae.maximum_pdu_size = 4 * 1024 * 1024; "
    "ae.supported_contexts = AllStoragePresentationContexts; "
    "ae.start_server(('127.0.0.1', int(sys.argv[1])), "
    "evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])"
)
"""pynetdicom out of the box in one process, answering Success without even writing."""


@contextmanager
def running_bare_pynetdicom() -> Iterator[tuple[int, int]]:
    """The reference SCP above; yields its port and process id."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_PYNETDICOM, str(port)])
    try:
        wait_listening(port)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(30)


@dataclass
class Round:
    """One receiver's round: seconds from the first storescu's start to the last one's end,
    and the CPU seconds the senders and (where known) the receiving processes used."""

    seconds: float
    sender_cpu: float
    receiver_cpu: list[float] = field(default_factory=list)  # one per receiving process


def timed_send(files: list[Path], port: int, called_ae: str, associations: int) -> Round:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = send(files, port, called_ae, associations)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sender_cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Round(seconds, sender_cpu)


def storescp_round(files: list[Path], associations: int, run_dir: Path) -> Round:
    output = run_dir / "storescp"
    with running_storescp(output) as port:
        measured = timed_send(files, port, STORESCP_AE, associations)
    received = sum(1 for _ in output.iterdir())
    if received != len(files):
        raise RuntimeError(f"storescp stored {received} of {len(files)} files")
    os.sync()  # its files are still in the page cache: written back now, not during the next round
    evict_from_page_cache(output.iterdir())
    return measured


def evict_from_page_cache(paths: Iterator[Path]) -> None:
    """Drop the (clean, synced) cached pages of `paths`: see the docstring, on storescp."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def bare_pynetdicom_round(files: list[Path], associations: int) -> Round:
    with running_bare_pynetdicom() as (port, pid):
        cpu_before = cpu_seconds(pid)
        measured = timed_send(files, port, "BARE", associations)
        measured.receiver_cpu = [cpu_seconds(pid) - cpu_before]
    return measured


def node_round(
    files: list[Path], associations: int, run_dir: Path, database: str, processes: int | None
) -> Round:
    spool = run_dir / "spool"
    database_context: AbstractContextManager[str] = (
        throwaway_postgres("agent_bench")
        if database == "postgresql"
        else nullcontext(f"sqlite:///{spool / 'agent.db'}")
    )
    with database_context as database_url:
        options: dict[str, Any] = {"dimse_processes": processes} if processes else {}
        settings = Settings(
            ae_title=NODE_AE,
            port=free_port(),
            spool_dir=spool,
            database_url=database_url,
            series_stable_seconds=3600,  # no routing or job while the study arrives
            **options,
        )
        with running_node(settings) as node:
            receivers = node.receiver_pids
            cpu_before = [cpu_seconds(pid) for pid in receivers]
            measured = timed_send(files, node.scp_address[1], NODE_AE, associations)
            cpu_after = [cpu_seconds(pid) for pid in receivers]
            measured.receiver_cpu = [b - a for a, b in zip(cpu_before, cpu_after, strict=True)]
        check_indexed(database_url, spool, len(files))
    return measured


def spool_round(files: list[Path], associations: int, run_dir: Path) -> Round:
    """Store the files' bytes (read beforehand) durably from `associations` threads."""
    spool = Spool(run_dir / "spool-only")
    contents = [(f"1.2.{i}", path.read_bytes()) for i, path in enumerate(files)]
    shares = [contents[i::associations] for i in range(associations)]

    def store(share: list[tuple[str, bytes]]) -> None:
        for uid, raw in share:
            spool.store(raw, study_uid="1.2", series_uid="1.2.1", sop_uid=uid)

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with ThreadPoolExecutor(associations) as pool:
        list(pool.map(store, shares))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Round(seconds, sender_cpu=0.0, receiver_cpu=[cpu])


def check_indexed(database_url: str, spool: Path, expected: int) -> None:
    engine = create_db_engine(database_url)
    try:
        with session_scope(session_factory(engine)) as session:
            rows = session.scalar(select(func.count(Instance.id)))
    finally:
        engine.dispose()
    spooled = sum(1 for _ in (spool / "instances").rglob("*.dcm"))
    if rows != expected or spooled != expected:
        raise RuntimeError(f"node: {rows} index rows and {spooled} files for {expected} sent")


def summary(images: int, rounds: list[Round]) -> dict[str, Any]:
    """The median round's rate, each round's, and CPU milliseconds per image."""
    seconds = [r.seconds for r in rounds]
    result: dict[str, Any] = {
        "images_per_s": images / statistics.median(seconds),
        "rounds_images_per_s": [round(images / s, 1) for s in seconds],
        "sender_cpu_ms_per_image": 1000 * statistics.median(r.sender_cpu for r in rounds) / images,
    }
    if all(r.receiver_cpu for r in rounds):
        receivers = statistics.median(sum(r.receiver_cpu) for r in rounds)
        result["receiver_cpu_ms_per_image"] = 1000 * receivers / images
        result["rounds_receiver_cpu_s_each"] = [
            [round(c, 2) for c in r.receiver_cpu] for r in rounds
        ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--associations", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, help="receiver processes (dimse_processes)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--with-pynetdicom", action="store_true", help="also time a bare pynetdicom SCP"
    )
    parser.add_argument(
        "--with-spool", action="store_true", help="also time durable writes alone (no DICOM)"
    )
    args = parser.parse_args()
    files = study_files()
    rounds: dict[str, list[Round]] = {"storescp": [], "node": [], "pynetdicom": [], "spool": []}
    shutil.rmtree(RUN_DIR, ignore_errors=True)  # left by an interrupted run
    try:
        for round_number in range(args.rounds):
            run_dir = RUN_DIR / f"round{round_number}"  # kept until the end: see the docstring
            rounds["storescp"].append(storescp_round(files, args.associations, run_dir))
            rounds["node"].append(
                node_round(files, args.associations, run_dir, args.database, args.processes)
            )
            if args.with_pynetdicom:
                rounds["pynetdicom"].append(bare_pynetdicom_round(files, args.associations))
            if args.with_spool:
                rounds["spool"].append(spool_round(files, args.associations, run_dir))
    finally:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
    report(args, len(files), rounds)


def report(args: argparse.Namespace, images: int, rounds: dict[str, list[Round]]) -> None:
    processes = args.processes or Settings().dimse_processes
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "study": {"images": images, "matrix": GEOMETRY.matrix, "bytes": study_bytes()},
        "associations": args.associations,
        "storescp": summary(images, rounds["storescp"]),
        "node": {
            **summary(images, rounds["node"]),
            "dimse_processes": processes,
            "database": args.database,
        },
    }
    if rounds["pynetdicom"]:
        result["bare_pynetdicom"] = summary(images, rounds["pynetdicom"])
    if rounds["spool"]:
        result["spool_only"] = summary(images, rounds["spool"])
    dcmtk_rate = result["storescp"]["images_per_s"]
    result["ratio"] = result["node"]["images_per_s"] / dcmtk_rate
    OUTPUT.write_text(json.dumps(result, indent=2))
    print(f"{images} images, {args.associations} associations, {args.rounds} rounds (median)")
    for name, label in (
        ("storescp", "storescp"),
        ("node", f"node ({processes} receiver processes, {args.database})"),
        ("bare_pynetdicom", "bare pynetdicom (1 process, no writing)"),
        ("spool_only", f"durable writes alone ({args.associations} threads, no DICOM)"),
    ):
        if name in result:
            print(line(label, result[name], dcmtk_rate))
    print(f"ratio node/storescp: {result['ratio']:.2f}  (written to {OUTPUT})")


def line(label: str, rate: dict[str, Any], dcmtk_rate: float) -> str:
    text = (
        f"{label}: {rate['images_per_s']:.1f} images/s ({rate['images_per_s'] / dcmtk_rate:.2f}"
        " of storescp)"
    )
    if rate["sender_cpu_ms_per_image"]:
        text += f"; storescu CPU {rate['sender_cpu_ms_per_image']:.2f} ms/image"
    if "receiver_cpu_ms_per_image" in rate:
        text += f", receiver CPU {rate['receiver_cpu_ms_per_image']:.2f} ms/image"
    return text


def study_bytes() -> int:
    return sum(path.stat().st_size for path in (STUDY_DIR / "ct").glob("*.dcm"))


if __name__ == "__main__":
    main()
