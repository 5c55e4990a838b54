"""The job state machine, as plain functions over a session the caller owns.

Every state change goes through `transition` (or `claim_job`, which takes a job atomically)
and writes one JobEvent. A flush of a stale copy of a job fails with ConcurrentUpdateError
instead of overwriting what another session wrote.

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled            failed, cancelled -> queued (retry)
    queued, running, succeeded, failed -> superseded (a newer job for the same series)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from sqlalchemy import and_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from agent.db.enums import JobState
from agent.db.models import Job, JobEvent, Series, utcnow
from agent.db.queries import get_job
from agent.db.session import rows_affected
from agent.errors import (
    ConcurrentUpdateError,
    IllegalTransitionError,
    LeaseLostError,
    NotFoundError,
)

log = logging.getLogger(__name__)

TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.SUPERSEDED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.SUPERSEDED}
    ),
    JobState.SUCCEEDED: frozenset({JobState.SUPERSEDED}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.SUPERSEDED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
    JobState.SUPERSEDED: frozenset(),
}
"""Allowed moves for `transition`. `claim_job` also lets a worker take over a running job
whose lease ran out (running -> running, recorded as an event too)."""


def can_transition(from_state: JobState, to_state: JobState) -> bool:
    return to_state in TRANSITIONS[from_state]


def _flush(session: Session, job: Job) -> None:
    job_id = job.id  # read now: after a failed flush the session can no longer load it
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConcurrentUpdateError(job_id) from exc


def _add_event(
    session: Session,
    job: Job,
    from_state: JobState | None,
    message: str,
    now: datetime,
) -> JobEvent:
    event = JobEvent(job=job, at=now, from_state=from_state, to_state=job.state, message=message)
    session.add(event)
    return event


def transition(
    session: Session, job: Job, to_state: JobState, message: str, *, now: datetime | None = None
) -> JobEvent:
    """Move `job` to `to_state` and record why; IllegalTransitionError if not allowed.

    Workers take jobs with `claim_job` (which sets the worker and the lease), not with this.
    """
    from_state = job.state
    if not can_transition(from_state, to_state):
        raise IllegalTransitionError(job.id, from_state, to_state)
    now = now or utcnow()
    job.state = to_state
    job.updated_at = now
    if to_state != JobState.RUNNING:
        job.lease_expires_at = None
    event = _add_event(session, job, from_state, message, now)
    _flush(session, job)
    log.info("job %d: %s -> %s", job.id, from_state, to_state)
    return event


class QueuedJob(NamedTuple):
    """A job just queued, as its message needs it."""

    id: int
    priority: int


def create_job(
    session: Session,
    series: Series,
    *,
    pipeline: str,
    rule: str,
    priority: int,
    now: datetime | None = None,
) -> Job:
    """A new queued job for `series`, as decided by `rule`."""
    now = now or utcnow()
    job = Job(
        series=series,
        pipeline=pipeline,
        rule=rule,
        priority=priority,
        state=JobState.QUEUED,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    _add_event(session, job, None, f"created by rule {rule} for pipeline {pipeline}", now)
    _flush(session, job)
    return job


def _claimable(job: Job, now: datetime) -> bool:
    if job.state == JobState.QUEUED:
        return True
    lease = job.lease_expires_at
    return job.state == JobState.RUNNING and lease is not None and lease < now


def claim_job(
    session: Session,
    job_id: int,
    worker: str,
    lease_seconds: float,
    *,
    now: datetime | None = None,
) -> Job | None:
    """Atomically take a queued job, or a running one whose lease ran out, for `worker`.

    Returns the running job, or None if it is not claimable (another worker won, or it is
    in another state). Safe to call from any number of workers at once: the UPDATE only
    matches the state read just before it.
    """
    now = now or utcnow()
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError("job", job_id)
    from_state = job.state
    if not _claimable(job, now):
        return None
    still_claimable = (
        Job.state == JobState.QUEUED
        if from_state == JobState.QUEUED
        else and_(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
    )
    claimed = rows_affected(
        session,
        update(Job)
        .where(Job.id == job_id, still_claimable)
        .values(
            state=JobState.RUNNING,
            worker=worker,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            updated_at=now,
            version=Job.version + 1,
        )
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        return None
    session.refresh(job)
    verb = "claimed" if from_state == JobState.QUEUED else "lease ran out; reclaimed"
    _add_event(session, job, from_state, f"{verb} by worker {worker}", now)
    _flush(session, job)
    log.info("job %d claimed by worker %s (attempt %d)", job.id, worker, job.attempts)
    return job


def _check_holder(job: Job, worker: str) -> None:
    if job.state != JobState.RUNNING or job.worker != worker:
        raise LeaseLostError(job.id, worker)


def renew_lease(
    session: Session, job: Job, worker: str, lease_seconds: float, *, now: datetime | None = None
) -> None:
    """Extend the lease of a job `worker` still holds (a heartbeat for long runs)."""
    _check_holder(job, worker)
    job.lease_expires_at = (now or utcnow()) + timedelta(seconds=lease_seconds)
    _flush(session, job)


STAGE_EVENT = re.compile(r"^stage (?P<stage>[a-z_]+) took (?P<seconds>[0-9.]+) s$")
"""How `record_stage` writes a stage into a job event's message (running -> running)."""


def record_stage(
    session: Session,
    job: Job,
    worker: str,
    stage: str,
    seconds: float,
    lease_seconds: float,
    *,
    now: datetime | None = None,
) -> JobEvent:
    """`worker` finished `stage` of `job` after `seconds`: write a running -> running event
    (`stage <name> took <seconds> s`, the event's `at` is the stage's end) and renew the lease.

    The events split a job's time by stage (see `parse_stage`). LeaseLostError if `worker`
    no longer holds the job.
    """
    _check_holder(job, worker)
    now = now or utcnow()
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.updated_at = now
    event = _add_event(session, job, JobState.RUNNING, f"stage {stage} took {seconds:.3f} s", now)
    _flush(session, job)
    return event


def parse_stage(message: str) -> tuple[str, float] | None:
    """The (stage, seconds) of a `record_stage` event message; None for other events."""
    found = STAGE_EVENT.match(message)
    return None if found is None else (found["stage"], float(found["seconds"]))


def succeed_job(
    session: Session, job: Job, worker: str, pipeline_version: str, *, now: datetime | None = None
) -> JobEvent:
    """`worker` finished `job` with `pipeline_version`; LeaseLostError if it no longer holds it."""
    _check_holder(job, worker)
    job.pipeline_version = pipeline_version
    return transition(session, job, JobState.SUCCEEDED, f"succeeded on worker {worker}", now=now)


def fail_job(
    session: Session, job: Job, worker: str, error: str, *, now: datetime | None = None
) -> JobEvent:
    """`worker` gives up on `job`; `error` is for people and must carry no PHI."""
    _check_holder(job, worker)
    job.error = error
    return transition(session, job, JobState.FAILED, f"failed on worker {worker}: {error}", now=now)


def supersede_job(
    session: Session, job: Job, newer: Job, *, now: datetime | None = None
) -> JobEvent:
    """`newer` (already flushed) replaces `job`, e.g. after late instances re-opened the series."""
    job.superseded_by = newer.id
    return transition(session, job, JobState.SUPERSEDED, f"superseded by job {newer.id}", now=now)


def retry_job(
    session: Session, job_id: int, message: str = "retry requested", *, now: datetime | None = None
) -> Job:
    """Queue a failed or cancelled job again; its error and worker are cleared."""
    job = get_job(session, job_id)
    if not can_transition(job.state, JobState.QUEUED):
        raise IllegalTransitionError(job.id, job.state, JobState.QUEUED)
    job.error = None
    job.worker = None
    transition(session, job, JobState.QUEUED, message, now=now)
    return job


def cancel_job(
    session: Session, job_id: int, message: str = "cancel requested", *, now: datetime | None = None
) -> Job:
    """Cancel a queued or running job; a running worker's finish then fails (LeaseLostError)."""
    job = get_job(session, job_id)
    transition(session, job, JobState.CANCELLED, message, now=now)
    return job
