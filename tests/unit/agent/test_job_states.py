"""The job state machine: allowed moves, one event per change, claims and leases."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent import jobs
from agent.db.enums import JobState
from agent.db.models import Job, JobEvent, Series
from agent.db.queries import expired_jobs, record_instance
from agent.errors import IllegalTransitionError, LeaseLostError, NotFoundError
from agent.received import ReceivedInstance

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = 600

MakeReceived = Callable[..., ReceivedInstance]


@pytest.fixture
def series(session: Session, make_received: MakeReceived) -> Series:
    record_instance(session, make_received())
    return session.scalars(select(Series)).one()


@pytest.fixture
def job(session: Session, series: Series) -> Job:
    return jobs.create_job(session, series, pipeline="lung", rule="ct-chest", priority=2, now=T0)


def _events(job: Job) -> list[tuple[JobState | None, JobState, str]]:
    return [(e.from_state, e.to_state, e.message) for e in job.events]


def _job_in(session: Session, series: Series, state: JobState) -> Job:
    """A job brought to `state` through legal moves only."""
    job = jobs.create_job(session, series, pipeline="lung", rule="r", priority=0, now=T0)
    path = {
        JobState.QUEUED: [],
        JobState.RUNNING: [JobState.RUNNING],
        JobState.SUCCEEDED: [JobState.RUNNING, JobState.SUCCEEDED],
        JobState.FAILED: [JobState.RUNNING, JobState.FAILED],
        JobState.CANCELLED: [JobState.CANCELLED],
        JobState.SUPERSEDED: [JobState.SUPERSEDED],
    }[state]
    for step in path:
        jobs.transition(session, job, step, "setup", now=T0)
    return job


def test_every_state_has_a_row_and_superseded_is_final() -> None:
    assert set(jobs.TRANSITIONS) == set(JobState)
    assert jobs.TRANSITIONS[JobState.SUPERSEDED] == frozenset()
    assert not any(state in targets for state, targets in jobs.TRANSITIONS.items())


def test_a_new_job_is_queued_with_a_creation_event(job: Job) -> None:
    assert (job.state, job.attempts, job.priority, job.rule) == (JobState.QUEUED, 0, 2, "ct-chest")
    assert _events(job) == [(None, JobState.QUEUED, "created by rule ct-chest for pipeline lung")]
    assert job.created_at == job.updated_at == T0


@pytest.mark.parametrize(("start", "end"), list(itertools.product(JobState, JobState)))
def test_transition_allows_exactly_the_table(
    session: Session, series: Series, start: JobState, end: JobState
) -> None:
    job = _job_in(session, series, start)
    before = len(job.events)
    later = T0 + timedelta(minutes=1)
    if end in jobs.TRANSITIONS[start]:
        event = jobs.transition(session, job, end, "why", now=later)
        assert (job.state, job.updated_at) == (end, later)
        assert (event.from_state, event.to_state, event.message, event.at) == (
            start,
            end,
            "why",
            later,
        )
        assert len(job.events) == before + 1
    else:
        with pytest.raises(IllegalTransitionError, match=f"cannot go from {start} to {end}"):
            jobs.transition(session, job, end, "why", now=later)
        assert job.state == start
        assert len(job.events) == before


def test_claim_takes_a_queued_job_once(session: Session, job: Job) -> None:
    claimed = jobs.claim_job(session, job.id, "worker-a", LEASE, now=T0)
    assert claimed is job
    assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, "worker-a", 1)
    assert job.lease_expires_at == T0 + timedelta(seconds=LEASE)
    assert _events(job)[-1] == (JobState.QUEUED, JobState.RUNNING, "claimed by worker worker-a")
    assert jobs.claim_job(session, job.id, "worker-b", LEASE, now=T0 + timedelta(seconds=1)) is None
    assert job.worker == "worker-a"


def test_a_running_job_whose_lease_ran_out_is_reclaimed(session: Session, job: Job) -> None:
    jobs.claim_job(session, job.id, "worker-a", LEASE, now=T0)
    late = T0 + timedelta(seconds=LEASE + 1)
    assert expired_jobs(session, T0 + timedelta(seconds=LEASE - 1)) == []
    assert expired_jobs(session, late) == [job]
    assert jobs.claim_job(session, job.id, "worker-b", LEASE, now=late) is job
    assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, "worker-b", 2)
    assert _events(job)[-1] == (
        JobState.RUNNING,
        JobState.RUNNING,
        "lease ran out; reclaimed by worker worker-b",
    )
    with pytest.raises(LeaseLostError):
        jobs.succeed_job(session, job, "worker-a", "1.0", now=late)


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_finished_jobs_cannot_be_claimed(session: Session, series: Series, state: JobState) -> None:
    job = _job_in(session, series, state)
    assert jobs.claim_job(session, job.id, "w", LEASE, now=T0 + timedelta(days=1)) is None
    assert job.state == state


def test_claim_of_a_missing_job_says_so(session: Session) -> None:
    with pytest.raises(NotFoundError, match="job 99 not found"):
        jobs.claim_job(session, 99, "w", LEASE)


def test_holder_succeeds_fails_and_renews(session: Session, series: Series) -> None:
    good = _job_in(session, series, JobState.QUEUED)
    bad = _job_in(session, series, JobState.QUEUED)
    for job in (good, bad):
        jobs.claim_job(session, job.id, "w", LEASE, now=T0)
    jobs.renew_lease(session, good, "w", LEASE, now=T0 + timedelta(seconds=300))
    assert good.lease_expires_at == T0 + timedelta(seconds=300 + LEASE)
    jobs.succeed_job(session, good, "w", "1.2.0")
    assert (good.state, good.pipeline_version, good.lease_expires_at) == (
        JobState.SUCCEEDED,
        "1.2.0",
        None,
    )
    jobs.fail_job(session, bad, "w", "no lung found")
    assert (bad.state, bad.error) == (JobState.FAILED, "no lung found")
    assert _events(bad)[-1][2] == "failed on worker w: no lung found"
    with pytest.raises(LeaseLostError):
        jobs.renew_lease(session, bad, "w", LEASE)


def test_retry_requeues_and_clears_the_failure(session: Session, series: Series) -> None:
    job = _job_in(session, series, JobState.QUEUED)
    jobs.claim_job(session, job.id, "w", LEASE, now=T0)
    jobs.fail_job(session, job, "w", "boom")
    assert jobs.retry_job(session, job.id, "operator retry") is job
    assert (job.state, job.error, job.worker, job.lease_expires_at) == (
        JobState.QUEUED,
        None,
        None,
        None,
    )
    assert _events(job)[-1] == (JobState.FAILED, JobState.QUEUED, "operator retry")
    with pytest.raises(IllegalTransitionError):
        jobs.retry_job(session, job.id)
    assert job.state == JobState.QUEUED


def test_cancel_then_retry(session: Session, job: Job) -> None:
    jobs.cancel_job(session, job.id)
    assert job.state == JobState.CANCELLED
    jobs.retry_job(session, job.id)
    assert job.state == JobState.QUEUED
    assert [e.to_state for e in job.events] == [
        JobState.QUEUED,
        JobState.CANCELLED,
        JobState.QUEUED,
    ]


def test_supersede_links_the_newer_job(session: Session, series: Series, job: Job) -> None:
    newer = jobs.create_job(session, series, pipeline="lung", rule="ct-chest", priority=2)
    jobs.supersede_job(session, job, newer)
    assert (job.state, job.superseded_by) == (JobState.SUPERSEDED, newer.id)
    assert _events(job)[-1][2] == f"superseded by job {newer.id}"


def test_every_state_change_wrote_one_event(session: Session, series: Series) -> None:
    job = _job_in(session, series, JobState.QUEUED)
    jobs.claim_job(session, job.id, "w", LEASE, now=T0)
    jobs.fail_job(session, job, "w", "x")
    jobs.retry_job(session, job.id)
    jobs.cancel_job(session, job.id)
    session.commit()
    stored = session.scalars(
        select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    )
    chain = [(e.from_state, e.to_state) for e in stored]
    assert chain == [
        (None, JobState.QUEUED),
        (JobState.QUEUED, JobState.RUNNING),
        (JobState.RUNNING, JobState.FAILED),
        (JobState.FAILED, JobState.QUEUED),
        (JobState.QUEUED, JobState.CANCELLED),
    ]
    assert all(later == earlier for (_, earlier), (later, _) in itertools.pairwise(chain))
