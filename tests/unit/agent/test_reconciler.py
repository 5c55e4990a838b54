"""The reconciler sends messages from the rows: lost workers, queued jobs, overdue exports."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.db.enums import ExportState, JobState, ResultKind
from agent.db.models import Export, Job, Series, utcnow
from agent.db.queries import record_instance
from agent.db.session import session_scope
from agent.reconciler import MAX_JOB_ATTEMPTS, Outbox, Reconciler
from tests.conftest import MakeReceived, result_row

RESEND_AFTER = 30.0
LEASE = 10.0


class RecordingDispatcher:
    """A dispatcher that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.jobs: list[int] = []
        self.priorities: list[int] = []
        self.exports: list[int] = []

    def send_job(self, job_id: int, priority: int) -> None:
        self.jobs.append(job_id)
        self.priorities.append(priority)

    def send_export(self, export_id: int) -> None:
        self.exports.append(export_id)


@pytest.fixture
def sent() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def reconciler(sqlite_sessions: sessionmaker[Session], sent: RecordingDispatcher) -> Reconciler:
    return Reconciler(sqlite_sessions, Outbox(sent), RESEND_AFTER)


@pytest.fixture
def job_id(sqlite_sessions: sessionmaker[Session], make_received: MakeReceived) -> int:
    with session_scope(sqlite_sessions) as session:
        record_instance(session, make_received())
        series = session.scalars(select(Series)).one()
        return jobs.create_job(session, series, pipeline="lung", rule="ct", priority=0).id


def claim(sessions: sessionmaker[Session], job_id: int, at: datetime) -> None:
    with session_scope(sessions) as session:
        assert jobs.claim_job(session, job_id, "worker-1", LEASE, now=at) is not None


def test_queued_job_is_sent_then_again_only_after_resend_after(
    reconciler: Reconciler, sent: RecordingDispatcher, job_id: int
) -> None:
    now = utcnow()
    assert reconciler.tick(now).jobs_sent == (job_id,)
    assert reconciler.tick(now + timedelta(seconds=1)).jobs_sent == ()
    assert reconciler.tick(now + timedelta(seconds=RESEND_AFTER)).jobs_sent == (job_id,)
    assert sent.jobs == [job_id, job_id]


def test_waiting_jobs_are_sent_highest_priority_first(
    sqlite_sessions: sessionmaker[Session],
    reconciler: Reconciler,
    sent: RecordingDispatcher,
    job_id: int,
) -> None:
    with session_scope(sqlite_sessions) as session:
        series = session.scalars(select(Series)).one()
        urgent = jobs.create_job(session, series, pipeline="lung", rule="stroke", priority=5).id

    assert reconciler.tick(utcnow()).jobs_sent == (urgent, job_id)
    assert sent.priorities == [5, 0]


def test_running_job_is_left_alone_until_its_lease_runs_out(
    sqlite_sessions: sessionmaker[Session],
    reconciler: Reconciler,
    sent: RecordingDispatcher,
    job_id: int,
) -> None:
    claimed_at = utcnow()
    claim(sqlite_sessions, job_id, claimed_at)
    assert reconciler.tick(claimed_at + timedelta(seconds=LEASE / 2)).jobs_sent == ()
    assert reconciler.tick(claimed_at + timedelta(seconds=LEASE + 1)).jobs_sent == (job_id,)
    assert sent.jobs == [job_id]


def test_job_that_lost_its_worker_too_often_fails(
    sqlite_sessions: sessionmaker[Session],
    reconciler: Reconciler,
    sent: RecordingDispatcher,
    job_id: int,
) -> None:
    start = utcnow()
    for attempt in range(MAX_JOB_ATTEMPTS):
        claim(sqlite_sessions, job_id, start + timedelta(seconds=attempt * (LEASE + 1)))

    report = reconciler.tick(start + timedelta(seconds=MAX_JOB_ATTEMPTS * (LEASE + 1)))

    assert (report.jobs_failed, report.jobs_sent, sent.jobs) == ((job_id,), (), [])
    with session_scope(sqlite_sessions) as session:
        job = session.get_one(Job, job_id)
        assert job.state == JobState.FAILED
        assert job.error is not None
        assert job.error.startswith(f"worker lost {MAX_JOB_ATTEMPTS} times")


def test_overdue_pending_export_is_sent_again(
    sqlite_sessions: sessionmaker[Session],
    reconciler: Reconciler,
    sent: RecordingDispatcher,
    job_id: int,
) -> None:
    now = utcnow()
    with session_scope(sqlite_sessions) as session:
        job = session.get_one(Job, job_id)
        jobs.cancel_job(session, job_id)
        result = result_row("results/x.dcm", ResultKind.SR, job=job)
        due_now = Export(
            result=result,
            destination="a",
            state=ExportState.PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        overdue = Export(
            result=result,
            destination="b",
            state=ExportState.PENDING,
            attempts=1,
            next_attempt_at=now - timedelta(seconds=RESEND_AFTER + 1),
        )
        session.add_all([due_now, overdue])
        session.flush()
        overdue_id = overdue.id

    assert reconciler.tick(now).exports_sent == (overdue_id,)
    assert sent.exports == [overdue_id]
