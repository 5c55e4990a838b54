"""The job runner without Celery, over a real spool and a SQLite job database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.config import Settings
from agent.db.enums import ExportState, JobState, ResultKind, SeriesState
from agent.db.models import Export, Job, Result, Series
from agent.db.queries import get_job
from agent.db.recorder import DatabaseRecorder
from agent.db.session import session_scope
from agent.dimse.ingest import Ingestor
from agent.spool import Spool
from models.reference.dicom_series import write_series
from models.reference.phantom import Geometry, generate
from tests.conftest import ct_header, part10
from tests.support.bundles import write_bundle
from workers.job_runner import RunnerContext, run_job

WORKER = "test-worker"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"spool_dir": tmp_path / "spool"})


@pytest.fixture
def context(settings: Settings) -> RunnerContext:
    return RunnerContext(settings, Spool(settings.spool_dir), WORKER)


def queue_series(
    sessions: sessionmaker[Session], context: RunnerContext, files: list[bytes]
) -> int:
    """Ingest `files` as received instances and queue a job for their series, by the
    default rule; the job's id."""
    ingestor = Ingestor(context.spool, DatabaseRecorder(sessions))
    for raw in files:
        ingestor.ingest(raw, calling_ae="SCANNER")
    rule = context.settings.rules[0]
    with session_scope(sessions) as session:
        series = session.scalars(select(Series)).one()
        series.state = SeriesState.QUEUED
        job = jobs.create_job(
            session, series, pipeline=rule.pipeline, rule=rule.name, priority=rule.priority
        )
        return job.id


def test_series_that_is_no_volume_fails_with_its_reason(
    sqlite_sessions: sessionmaker[Session], context: RunnerContext
) -> None:
    job_id = queue_series(sqlite_sessions, context, [part10(ct_header("1.2", "1.2.3", 1, 0.0))])
    with sqlite_sessions() as session:
        outcome = run_job(session, context, job_id)
    assert (outcome.state, outcome.export_ids) == (JobState.FAILED, ())
    with session_scope(sqlite_sessions) as session:
        job = get_job(session, job_id)
        assert job.error == "load failed: a volume needs at least 2 slices, got 1"
        assert (job.worker, job.attempts, job.results) == (WORKER, 1, [])


def test_cancelled_or_unknown_job_is_not_run(
    sqlite_sessions: sessionmaker[Session], context: RunnerContext
) -> None:
    job_id = queue_series(sqlite_sessions, context, [part10(ct_header("1.2", "1.2.3", 1, 0.0))])
    with session_scope(sqlite_sessions) as session:
        jobs.cancel_job(session, job_id)
    with sqlite_sessions() as session:
        assert run_job(session, context, job_id).state is None
        assert run_job(session, context, job_id + 100).state is None
        assert session.get_one(Job, job_id).state == JobState.CANCELLED


@pytest.mark.slow
def test_runs_the_pipeline_and_a_second_run_reuses_everything(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session], context: RunnerContext
) -> None:
    phantom = generate(5, Geometry(256, 1.4, 2.5, 40), nodule_count=2, window=(110.0, 210.0))
    files = [path.read_bytes() for path in write_series(phantom, tmp_path / "ct")]
    job_id = queue_series(sqlite_sessions, context, files)

    with sqlite_sessions() as session:  # the runner commits as it goes
        first = run_job(session, context, job_id)
    with session_scope(sqlite_sessions) as session:
        # As if the job had been left to run again (a lease that ran out after the commit).
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.QUEUED))
    with sqlite_sessions() as session:
        second = run_job(session, context, job_id)

    assert first.state == second.state == JobState.SUCCEEDED
    assert first.export_ids == second.export_ids
    with session_scope(sqlite_sessions) as session:
        job = get_job(session, job_id)
        kinds = Counter(result.kind for result in job.results)
        assert (kinds[ResultKind.SEG], kinds[ResultKind.SR], kinds[ResultKind.SC] > 0) == (
            1,
            1,
            True,
        )
        assert all(context.spool.path_of(result.path).is_file() for result in job.results)
        assert session.scalar(select(func.count()).select_from(Result)) == kinds.total()
        exports = session.scalars(select(Export)).all()
        assert len(exports) == kinds.total()
        assert {export.state for export in exports} == {ExportState.PENDING}
        stages = [jobs.parse_stage(event.message) for event in job.events]
        assert [stage[0] for stage in stages if stage] == ["load", "infer", "encode"] * 2
        assert job.series.state == SeriesState.DONE


def test_a_rule_runs_a_monai_bundle_from_the_models_dir(
    tmp_path: Path,
    sqlite_sessions: sessionmaker[Session],
    dciodvfy: Callable[[Dataset], tuple[list[str], list[str]]],
) -> None:
    """Bring your own model: a bundle dropped into `models_dir`, named by a rule, gives the
    same kinds of results as the reference pipeline."""
    write_bundle(tmp_path / "models" / "dense-bundle")
    settings = Settings.model_validate(
        {
            "spool_dir": tmp_path / "spool",
            "models_dir": tmp_path / "models",
            "rules": [
                {
                    "name": "dense",
                    "match": {},
                    "pipeline": "dense-bundle",
                    "destinations": ["local"],
                }
            ],
        }
    )
    context = RunnerContext(settings, Spool(settings.spool_dir), WORKER)
    air = generate(7, Geometry(256, 1.4, 2.5, 16), nodule_count=0, window=(120.0, 160.0))
    hu = np.full_like(air.hu, -900)
    hu[4:10, 100:120, 60:80] = 40  # two dense blocks, one per lung
    hu[6:9, 110:121, 170:185] = 60
    files = [p.read_bytes() for p in write_series(replace(air, hu=hu), tmp_path / "ct")]
    job_id = queue_series(sqlite_sessions, context, files)

    with sqlite_sessions() as session:
        outcome = run_job(session, context, job_id)

    assert outcome.state == JobState.SUCCEEDED
    with session_scope(sqlite_sessions) as session:
        job = get_job(session, job_id)
        assert (job.pipeline, job.pipeline_version) == ("dense-bundle", "0.2.0")
        kinds = Counter(result.kind for result in job.results)
        assert (kinds[ResultKind.SEG], kinds[ResultKind.SR], kinds[ResultKind.SC]) == (1, 1, 2)
        for result in job.results:
            errors, _ = dciodvfy(dcmread(context.spool.path_of(result.path)))
            assert errors == [], (result.kind, errors)
