"""End-to-end latency: a CT study in by C-STORE, its SEG and SR stored at a real PACS.

    .venv/bin/python -m bench.e2e [--slices 120,300] [--backend embedded|redis-postgres]
                                  [--stable-seconds 2] [--no-warmup] [--output FILE]

Starts Orthanc (the PACS), an in-process node (listener, completion loop, reconciler) routing
CT to the reference pipeline and to Orthanc over C-STORE, and one `dicom-agent worker`; then
sends each study with DCMTK storescu and polls Orthanc until the SEG and the SR are stored.
Studies: a 512 x 512 CT (0.7 mm pixels, 1 mm slices) per `--slices` value, generated once and
cached under scratch/bench/e2e/. A small warm-up study goes first (reported too, as the cold
worker: models load on a worker's first job), so the measured studies find a warm worker.

Prints, per study, the seconds from the last instance received to SEG + SR at the PACS, split
by stage (see `bench.e2e_stages.split_stages`), and writes them as JSON to `--output`
(scratch/bench/e2e.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import func, select

from agent.db.enums import JobState, ResultKind
from agent.db.models import Instance, Job, Series
from agent.db.queries import get_job
from agent.db.schemas import JobDetail
from agent.db.session import create_db_engine, session_factory, session_scope
from bench.e2e_stages import TOTAL, Timeline, split_stages
from models.reference.phantom import Geometry
from tests.support.databases import emptied_redis, throwaway_postgres
from tests.support.node import (
    SCP_AE,
    Deployment,
    Workers,
    node_config,
    running_node,
    storescu,
    wait_for,
    write_deployment,
)
from tests.support.orthanc import Pacs, running_orthanc
from tests.support.studies import write_ct_study

SCRATCH = Path("scratch/bench")
CACHE = SCRATCH / "e2e"
RUN_DIR = SCRATCH / "e2e-run"
OUTPUT = SCRATCH / "e2e.json"
REDIS_URL = "redis://127.0.0.1:6379/13"
STUDY_TIMEOUT = 900.0
NODULES = 3


@dataclass(frozen=True)
class Case:
    label: str
    seed: int
    geometry: Geometry
    window: tuple[float, float] | None = None
    nodules: int = NODULES


WARMUP = Case("256x256x40 cold", 164, Geometry(256, 1.4, 2.0, 40), (120.0, 200.0), 1)


def chest_ct(slices: int) -> Case:
    return Case(f"512x512x{slices}", 5_000_000 + slices, Geometry(512, 0.7, 1.0, slices))


def cached_series(case: Case) -> list[Path]:
    """The case's CT files, written under CACHE the first time."""
    directory = CACHE / case.label.replace(" ", "-")
    files = sorted((directory / "ct").glob("*.dcm"))
    if len(files) == case.geometry.slices:
        return files
    shutil.rmtree(directory, ignore_errors=True)
    print(f"writing the {case.label} phantom to {directory} (once)", flush=True)
    study = write_ct_study(
        directory,
        case.seed,
        case.geometry,
        nodule_count=case.nodules,
        window=case.window,
        localizer=False,
    )
    return study.ct


@contextmanager
def backend_urls(backend: str, run_dir: Path) -> Iterator[tuple[str, str | None]]:
    """(database URL, broker URL): SQLite and the embedded broker (None), or a throwaway
    PostgreSQL database and an emptied Redis database."""
    if backend == "embedded":
        yield f"sqlite:///{(run_dir / 'agent.db').resolve()}", None
        return
    with throwaway_postgres("agent_bench") as url:
        yield url, emptied_redis(REDIS_URL)


def start_stack(stack: ExitStack, backend: str, stable_seconds: float) -> tuple[Deployment, Pacs]:
    """Orthanc, the node and one worker, all stopped when `stack` closes."""
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    database_url, broker_url = stack.enter_context(backend_urls(backend, RUN_DIR))
    pacs = stack.enter_context(running_orthanc(RUN_DIR / "orthanc"))
    config = node_config(
        RUN_DIR / "spool",
        database_url,
        [pacs.destination("pacs")],
        broker_url,
        series_stable_seconds=stable_seconds,
        job_lease_seconds=600,
    )
    engine = create_db_engine(database_url)
    stack.callback(engine.dispose)
    deployment = write_deployment(RUN_DIR / "agent.yaml", config, session_factory(engine))
    stack.enter_context(running_node(deployment.settings))
    workers = Workers(deployment)
    stack.callback(workers.stop)
    workers.start()
    return deployment, pacs


def stored_at_pacs(deployment: Deployment, pacs: Pacs, study_uid: str, series_uid: str) -> datetime:
    """When the SEG and the SR of the study were both seen at the PACS (polled)."""

    def probe() -> datetime | None:
        at = datetime.now(UTC)
        if {"SEG", "SR"} <= pacs.instances_by_modality(study_uid).keys():
            return at
        job = finished_job(deployment, series_uid)
        if job is not None and job.state == JobState.FAILED:
            raise RuntimeError(f"the job failed: {job.error}")
        if job is not None and not any(result.kind == ResultKind.SEG for result in job.results):
            raise RuntimeError("the job made no SEG: the pipeline found no lesion")
        return None

    return wait_for("SEG and SR at the PACS", deployment, probe, STUDY_TIMEOUT)


def finished_job(deployment: Deployment, series_uid: str) -> JobDetail | None:
    with session_scope(deployment.sessions) as session:
        job = session.scalars(
            select(Job)
            .join(Series)
            .where(
                Series.series_instance_uid == series_uid,
                Job.state.in_([JobState.SUCCEEDED, JobState.FAILED]),
            )
        ).first()
        return None if job is None else JobDetail.model_validate(get_job(session, job.id))


def timeline(deployment: Deployment, job: JobDetail, stored: datetime) -> Timeline:
    with session_scope(deployment.sessions) as session:
        first, last = session.execute(
            select(func.min(Instance.received_at), func.max(Instance.received_at)).where(
                Instance.series_id == job.series.id
            )
        ).one()
    return Timeline(first, last, job.created_at, job.events, stored)


def measure(deployment: Deployment, pacs: Pacs, case: Case) -> dict[str, Any]:
    """Send the case's study, wait for its SEG and SR at the PACS; its stages and sizes."""
    files = cached_series(case)
    header = dcmread(files[0], stop_before_pixels=True)
    started = time.perf_counter()
    storescu(deployment.settings.port, *files, called_ae=SCP_AE)
    sent_seconds = time.perf_counter() - started
    series_uid = header.SeriesInstanceUID
    stored = stored_at_pacs(deployment, pacs, header.StudyInstanceUID, series_uid)
    job = wait_for("the job", deployment, lambda: finished_job(deployment, series_uid))
    stages = split_stages(timeline(deployment, job, stored))
    results = Counter(str(result.kind) for result in job.results)
    print(f"{case.label}: {stages[TOTAL]:.1f} s from the last instance to SEG + SR at the PACS")
    return {
        "study": case.label,
        "geometry": asdict(case.geometry),
        "instances": len(files),
        "megabytes": round(sum(path.stat().st_size for path in files) / 1e6, 1),
        "storescu_s": round(sent_seconds, 3),
        "results": dict(sorted(results.items())),
        "stages_s": {name: round(seconds, 3) for name, seconds in stages.items()},
    }


def print_table(runs: list[dict[str, Any]], title: str) -> None:
    names = list(runs[0]["stages_s"])
    width = max(len(run["study"]) for run in runs) + 2
    print(f"\n{title}\n{'stage [s]':<16}" + "".join(f"{r['study']:>{width}}" for r in runs))
    for name in names:
        label = "total*" if name == TOTAL else name
        print(f"{label:<16}" + "".join(f"{r['stages_s'][name]:>{width}.2f}" for r in runs))
    print("* last instance received -> SEG + SR stored at the PACS (all rows but receive)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--slices", default="120,300", help="512 x 512 studies to send")
    parser.add_argument("--backend", choices=["embedded", "redis-postgres"], default="embedded")
    parser.add_argument("--stable-seconds", type=float, default=2.0, help="series_stable_seconds")
    parser.add_argument("--no-warmup", action="store_true", help="measure a cold worker")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the JSON goes")
    args = parser.parse_args()
    cases = ([] if args.no_warmup else [WARMUP]) + [
        chest_ct(int(n)) for n in args.slices.split(",")
    ]
    for case in cases:
        cached_series(case)
    with ExitStack() as stack:
        deployment, pacs = start_stack(stack, args.backend, args.stable_seconds)
        runs = [measure(deployment, pacs, case) for case in cases]
    title = f"{args.backend}, series_stable_seconds={args.stable_seconds:g}"
    print_table(runs, title)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"backend": args.backend, "series_stable_seconds": args.stable_seconds, "runs": runs}
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.output.write_text(json.dumps(report, indent=2))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
