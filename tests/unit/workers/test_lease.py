"""The lease keeper: a long stage keeps its job, a job taken over is let go."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.db.enums import JobState
from agent.db.models import Job, Series, utcnow
from agent.db.queries import expired_jobs, record_instance
from agent.db.session import session_scope
from agent.received import ReceivedInstance
from workers.lease import LeaseKeeper

LEASE_SECONDS = 1.0
WORKER, OTHER = "worker-a", "worker-b"


def claimed_job(
    sessions: sessionmaker[Session], make_received: Callable[..., ReceivedInstance]
) -> int:
    with session_scope(sessions) as session:
        record_instance(session, make_received())
        series = session.scalars(select(Series)).one()
        job = jobs.create_job(session, series, pipeline="lung", rule="ct-chest", priority=2)
        session.flush()
        assert jobs.claim_job(session, job.id, WORKER, LEASE_SECONDS) is not None
        return job.id


def test_a_stage_longer_than_the_lease_keeps_its_job(
    sqlite_sessions: sessionmaker[Session], make_received: Callable[..., ReceivedInstance]
) -> None:
    job_id = claimed_job(sqlite_sessions, make_received)

    with LeaseKeeper(sqlite_sessions, WORKER, LEASE_SECONDS).kept(job_id):
        time.sleep(3 * LEASE_SECONDS)  # the stage's work
        with sqlite_sessions() as session:
            assert expired_jobs(session, utcnow()) == []
            job = session.get_one(Job, job_id)
            assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, WORKER, 1)

    time.sleep(1.5 * LEASE_SECONDS)  # once the stage is over, renewals stop
    with sqlite_sessions() as session:
        assert [job.id for job in expired_jobs(session, utcnow())] == [job_id]


def test_a_job_taken_over_is_let_go(
    sqlite_sessions: sessionmaker[Session],
    make_received: Callable[..., ReceivedInstance],
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = claimed_job(sqlite_sessions, make_received)
    keeper = LeaseKeeper(sqlite_sessions, WORKER, LEASE_SECONDS)

    with keeper.kept(job_id):
        with session_scope(sqlite_sessions) as session:  # as if the lease had run out
            job = session.get_one(Job, job_id)
            job.lease_expires_at = utcnow()
        time.sleep(0.1)
        with session_scope(sqlite_sessions) as session:
            assert jobs.claim_job(session, job_id, OTHER, 60.0) is not None
        time.sleep(2 * LEASE_SECONDS)  # the keeper tries once or twice, and stops

    with sqlite_sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, OTHER, 2)
    [stopped] = [r.getMessage() for r in caplog.records if "lease not renewed" in r.getMessage()]
    assert f"job {job_id}" in stopped
