"""Running one job, without Celery: claim, load, infer, encode, record, name the exports.

`run_job` takes the job (a lease in `agent.jobs.claim_job`) and goes through its stages, each
committed when it ends with a job event `stage <name> took <seconds> s` that also renews the
lease (see `agent.jobs.record_stage`; `parse_stage` reads them back); while a stage runs,
`workers.lease.LeaseKeeper` renews the lease in the background:

- `load`: the series' instances from the spool, as one volume;
- `infer`: the pipeline (built once per process) on the volume;
- `encode`: SEG (only when there are lesions), TID 1500 SR and key images, written to
  `<spool_dir>/results/...` atomically;

then result rows and one export row per result and destination of the job's rule are
written, and the job succeeds, all in one transaction. Any failure of a stage fails the job
with a reason a person can read. Running a job again is safe: its result UIDs are derived
from the job, so files are replaced and existing rows reused. If the job was taken over,
cancelled or superseded meanwhile, the run stops without touching it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Rule, Settings
from agent.db.enums import ExportState, JobState, ResultKind, SeriesState
from agent.db.models import Export, Instance, Job, Result, Series, utcnow
from agent.errors import ConcurrentUpdateError, LeaseLostError, NotFoundError
from agent.jobs import claim_job, fail_job, record_stage, succeed_job
from agent.spool import Spool
from models.errors import ModelsError
from models.findings import Findings
from models.pipelines.registry import get_pipeline
from models.volume import Volume, load_datasets
from workers.lease import LeaseKeeper
from workers.results import (
    ResultEncodingError,
    ResultIdentity,
    encode_key_images,
    encode_seg,
    encode_sr,
)

log = logging.getLogger(__name__)

EXPECTED_ERRORS = (ModelsError, ResultEncodingError, OSError, ValueError)
"""Failures with a message fit for people as it is; others are reported with their type."""
LOST_JOB_ERRORS = (LeaseLostError, ConcurrentUpdateError)


@dataclass(frozen=True)
class RunnerContext:
    """What a worker process knows: the settings, the spool, and its own name."""

    settings: Settings
    spool: Spool
    worker: str


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: the job's state (None: not ours to run) and the exports to send."""

    job_id: int
    state: JobState | None
    export_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class StoredObject:
    kind: ResultKind
    dataset: Dataset
    spool_path: str


class _StageFailed(Exception):
    def __init__(self, stage: str, cause: Exception) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"{stage} failed: {_describe(cause)}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, EXPECTED_ERRORS):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


class _Stages:
    """Times each stage and records it on the job when it ends (which renews the lease);
    keeps the lease while it runs."""

    def __init__(self, session: Session, context: RunnerContext, job: Job) -> None:
        self._session = session
        self._context = context
        self._job = job
        self._lease = LeaseKeeper(
            sessionmaker(bind=session.get_bind()),
            context.worker,
            context.settings.job_lease_seconds,
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            with self._lease.kept(self._job.id):
                yield
        except (*LOST_JOB_ERRORS, SQLAlchemyError):
            raise
        except Exception as exc:  # any failure of the work fails the job, with its reason
            raise _StageFailed(name, exc) from exc
        self._session.refresh(self._job)
        elapsed = time.perf_counter() - started
        lease = self._context.settings.job_lease_seconds
        record_stage(self._session, self._job, self._context.worker, name, elapsed, lease)
        self._session.commit()


def run_job(session: Session, context: RunnerContext, job_id: int) -> RunOutcome:
    """Claim job `job_id` and run it to success or failure; see the module doc."""
    try:
        job = claim_job(session, job_id, context.worker, context.settings.job_lease_seconds)
    except NotFoundError:
        log.warning("job %d does not exist; its message is dropped", job_id)
        return RunOutcome(job_id, None)
    session.commit()
    if job is None:
        log.info("job %d is not claimable (taken, finished or cancelled); nothing to do", job_id)
        return RunOutcome(job_id, None)
    try:
        return _run_claimed(session, context, job)
    except _StageFailed as failure:
        if not isinstance(failure.cause, EXPECTED_ERRORS):
            log.error("job %d: %s", job_id, failure, exc_info=failure.cause)
        return _fail(session, context, job_id, str(failure))
    except LOST_JOB_ERRORS as exc:
        session.rollback()
        log.warning("job %d: stopped, %s", job_id, exc)
        return RunOutcome(job_id, None)


def _run_claimed(session: Session, context: RunnerContext, job: Job) -> RunOutcome:
    rule = _rule(context.settings, job.rule)
    stages = _Stages(session, context, job)
    with stages.stage("load"):
        source = _load_source(session, context.spool, job)
        volume = load_datasets(source)
    with stages.stage("infer"):
        pipeline = get_pipeline(job.pipeline, context.settings.models_dir)
        findings = pipeline.run(volume)
    identity = ResultIdentity(job.id, pipeline.name, pipeline.version)
    with stages.stage("encode"):
        stored = _encode_and_store(context.spool, source, volume, findings, identity)
    export_ids = _record(session, job, stored, rule)
    succeed_job(session, job, context.worker, pipeline.version)
    _mark_series_done(session, job.series_id)
    session.commit()
    return RunOutcome(job.id, JobState.SUCCEEDED, export_ids)


def _rule(settings: Settings, name: str) -> Rule:
    rule = next((rule for rule in settings.rules if rule.name == name), None)
    if rule is None:
        cause = ValueError(f"rule {name} is no longer configured; its destinations are unknown")
        raise _StageFailed("prepare", cause)
    return rule


def _load_source(session: Session, spool: Spool, job: Job) -> list[Dataset]:
    paths = session.scalars(select(Instance.spool_path).where(Instance.series_id == job.series_id))
    return [dcmread(spool.path_of(path)) for path in paths]


def _encode_and_store(
    spool: Spool,
    source: list[Dataset],
    volume: Volume,
    findings: Findings,
    identity: ResultIdentity,
) -> list[StoredObject]:
    seg = encode_seg(source, volume, findings, identity) if findings.lesions else None
    objects: list[tuple[ResultKind, Dataset]] = [] if seg is None else [(ResultKind.SEG, seg)]
    objects.append((ResultKind.SR, encode_sr(source, volume, findings, seg, identity)))
    objects.extend(
        (ResultKind.SC, image) for image in encode_key_images(source, volume, findings, identity)
    )
    return [_store(spool, kind, dataset) for kind, dataset in objects]


def _store(spool: Spool, kind: ResultKind, dataset: Dataset) -> StoredObject:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    stored = spool.store_result(
        buffer.getvalue(),
        study_uid=str(dataset.StudyInstanceUID),
        series_uid=str(dataset.SeriesInstanceUID),
        sop_uid=str(dataset.SOPInstanceUID),
    )
    return StoredObject(kind, dataset, stored.relative_path)


def _record(session: Session, job: Job, stored: list[StoredObject], rule: Rule) -> tuple[int, ...]:
    """Result rows (reused when they exist) and their exports; the pending exports' ids."""
    now = utcnow()
    pending = []
    for item in stored:
        result = _result_row(session, job, item)
        known = {export.destination: export for export in result.exports}
        for destination in rule.destinations:
            export = known.get(destination)
            if export is None:
                export = Export(
                    result=result,
                    destination=destination,
                    state=ExportState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                )
                session.add(export)
            if export.state == ExportState.PENDING:
                pending.append(export)
    session.flush()
    return tuple(export.id for export in pending)


def _result_row(session: Session, job: Job, item: StoredObject) -> Result:
    sop_uid = str(item.dataset.SOPInstanceUID)
    result = session.scalars(select(Result).where(Result.sop_instance_uid == sop_uid)).one_or_none()
    if result is None:
        result = Result(
            job=job,
            kind=item.kind,
            sop_instance_uid=sop_uid,
            sop_class_uid=str(item.dataset.SOPClassUID),
            series_instance_uid=str(item.dataset.SeriesInstanceUID),
            path=item.spool_path,
        )
        session.add(result)
    return result


def _mark_series_done(session: Session, series_id: int) -> None:
    """The series is done unless new data re-opened it meanwhile (then it is not queued)."""
    session.execute(
        update(Series)
        .where(Series.id == series_id, Series.state == SeriesState.QUEUED)
        .values(state=SeriesState.DONE)
        .execution_options(synchronize_session=False)
    )


def _fail(session: Session, context: RunnerContext, job_id: int, error: str) -> RunOutcome:
    session.rollback()
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None  # it was claimed in this session
    try:
        fail_job(session, job, context.worker, error)
    except LOST_JOB_ERRORS as exc:
        session.rollback()
        log.warning("job %d: could not record its failure, %s", job_id, exc)
        return RunOutcome(job_id, None)
    session.commit()
    log.warning("job %d failed: %s", job_id, error)
    return RunOutcome(job_id, JobState.FAILED)
