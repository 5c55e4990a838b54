"""The job database on SQLite and PostgreSQL: migrations, indexing received instances,
listing, and the job state machine under concurrent sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.db.enums import ExportState, JobState, ResultKind, SeriesState
from agent.db.migrate import alembic_config, upgrade
from agent.db.models import Base, Export, Instance, Job, JobEvent, Series, Study
from agent.db.queries import (
    JobFilter,
    get_job,
    list_jobs,
    list_studies,
    record_instance,
    record_instances,
)
from agent.db.schemas import JobDetail
from agent.db.session import session_scope
from agent.errors import ConcurrentUpdateError
from agent.received import ReceivedInstance
from tests.conftest import result_row

pytestmark = pytest.mark.integration

MakeReceived = Callable[..., ReceivedInstance]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = 600


def _series(session: Session, uid: str) -> Series:
    return session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()


def _queued_job(sessions: sessionmaker[Session], received: ReceivedInstance) -> int:
    with session_scope(sessions) as session:
        record_instance(session, received)
        series = _series(session, received.series_instance_uid)
        return jobs.create_job(session, series, pipeline="lung", rule="ct", priority=0).id


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_removes_everything_and_upgrade_is_repeatable(
    engine: Engine, database_url: str
) -> None:
    command.downgrade(alembic_config(database_url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    upgrade(database_url)
    assert set(Base.metadata.tables) < set(inspect(engine).get_table_names())


def test_first_instance_creates_study_and_series(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    received = make_received()
    with session_scope(sessions) as session:
        assert record_instance(session, received) is True
    with session_scope(sessions) as session:
        study = session.scalars(select(Study)).one()
        assert (study.patient_id, study.accession_number, study.study_date) == (
            "PAT-1",
            "ACC-1",
            date(2025, 1, 2),
        )
        series = _series(session, received.series_instance_uid)
        assert (series.state, series.instance_count, series.reopened) == (
            SeriesState.RECEIVING,
            1,
            0,
        )
        assert series.last_received_at == received.received_at
        assert series.last_received_at.tzinfo is UTC
        instance = session.scalars(select(Instance)).one()
        assert (instance.sha256, instance.spool_path, instance.calling_ae) == (
            received.sha256,
            received.spool_path,
            "CT_SCANNER",
        )


def test_identical_resend_is_harmless(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    received = make_received()
    with session_scope(sessions) as session:
        record_instance(session, received)
        _series(session, received.series_instance_uid).state = SeriesState.DONE
    later = received.received_at + timedelta(hours=1)
    with session_scope(sessions) as session:
        assert (
            record_instance(session, make_received(**_same(received), received_at=later)) is False
        )
    with session_scope(sessions) as session:
        series = _series(session, received.series_instance_uid)
        assert (series.state, series.instance_count, series.reopened) == (SeriesState.DONE, 1, 0)
        assert series.last_received_at == received.received_at


def _same(received: ReceivedInstance) -> dict[str, object]:
    return {"sop_instance_uid": received.sop_instance_uid, "sha256": received.sha256}


def test_changed_resend_replaces_the_file(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    first = make_received()
    with session_scope(sessions) as session:
        record_instance(session, first)
    changed = make_received(sop_instance_uid=first.sop_instance_uid, spool_path="incoming/new.dcm")
    with session_scope(sessions) as session:
        assert record_instance(session, changed) is True
    with session_scope(sessions) as session:
        instance = session.scalars(select(Instance)).one()
        assert (instance.sha256, instance.spool_path) == (changed.sha256, "incoming/new.dcm")
        assert _series(session, first.series_instance_uid).instance_count == 1


def test_changed_resend_into_another_series_moves_the_count(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    first = make_received()
    with session_scope(sessions) as session:
        record_instance(session, first)
    moved = make_received(sop_instance_uid=first.sop_instance_uid, series_instance_uid="9.9")
    with session_scope(sessions) as session:
        assert record_instance(session, moved) is True
    with session_scope(sessions) as session:
        assert _series(session, first.series_instance_uid).instance_count == 0
        assert _series(session, "9.9").instance_count == 1


@pytest.mark.parametrize(
    ("state", "reopened"),
    [
        (SeriesState.RECEIVING, 0),
        (SeriesState.READY, 0),
        (SeriesState.QUEUED, 1),
        (SeriesState.SKIPPED, 1),
        (SeriesState.DONE, 1),
    ],
)
def test_late_instance_puts_the_series_back_to_receiving(
    sessions: sessionmaker[Session], make_received: MakeReceived, state: SeriesState, reopened: int
) -> None:
    first = make_received()
    with session_scope(sessions) as session:
        record_instance(session, first)
        series = _series(session, first.series_instance_uid)
        series.state = state
        series.skip_reason = "no rule matched" if state == SeriesState.SKIPPED else None
    late = make_received(received_at=first.received_at + timedelta(minutes=5))
    with session_scope(sessions) as session:
        assert record_instance(session, late) is True
    with session_scope(sessions) as session:
        series = _series(session, first.series_instance_uid)
        assert (series.state, series.reopened, series.instance_count) == (
            SeriesState.RECEIVING,
            reopened,
            2,
        )
        assert (series.last_received_at, series.skip_reason) == (late.received_at, None)


def test_concurrent_first_instances_of_one_series(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    first, second = make_received(), make_received()
    with sessions() as holder:
        record_instance(holder, first)
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(_record_in_own_session, sessions, second)
            with pytest.raises(TimeoutError):
                other.result(timeout=0.5)
            holder.commit()
            assert other.result(timeout=30) is True
    with session_scope(sessions) as session:
        assert session.scalar(select(func.count(Study.id))) == 1
        assert _series(session, first.series_instance_uid).instance_count == 2


def _record_in_own_session(sessions: sessionmaker[Session], received: ReceivedInstance) -> bool:
    with session_scope(sessions) as session:
        return record_instance(session, received)


def test_naive_datetimes_are_refused(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    with sessions() as session, pytest.raises(StatementError, match="naive datetime"):
        record_instance(session, make_received(received_at=datetime(2025, 1, 1)))


def test_claim_race_between_two_sessions(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    """B reads the job as queued while A's claim is not yet committed: only A wins."""
    job_id = _queued_job(sessions, make_received())
    with sessions() as first:
        assert jobs.claim_job(first, job_id, "worker-a", LEASE) is not None
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(_claim_in_own_session, sessions, job_id, "worker-b")
            with pytest.raises(TimeoutError):
                second.result(timeout=0.5)
            first.commit()
            assert second.result(timeout=30) is None
    _assert_claimed_once(sessions, job_id, "worker-a")


def test_claim_race_between_many_workers(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    job_id = _queued_job(sessions, make_received())
    workers = [f"worker-{n}" for n in range(4)]
    start = threading.Barrier(len(workers))

    def claim(worker: str) -> bool:
        start.wait()
        return _claim_in_own_session(sessions, job_id, worker) is not None

    with ThreadPoolExecutor(len(workers)) as pool:
        won = dict(zip(workers, pool.map(claim, workers), strict=True))
    [winner] = [worker for worker, claimed in won.items() if claimed]
    _assert_claimed_once(sessions, job_id, winner)


def _claim_in_own_session(sessions: sessionmaker[Session], job_id: int, worker: str) -> int | None:
    with session_scope(sessions) as session:
        job = jobs.claim_job(session, job_id, worker, LEASE)
        return None if job is None else job.id


def _assert_claimed_once(sessions: sessionmaker[Session], job_id: int, worker: str) -> None:
    with session_scope(sessions) as session:
        job = get_job(session, job_id)
        assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, worker, 1)
        assert [e.to_state for e in job.events] == [JobState.QUEUED, JobState.RUNNING]


def test_a_stale_copy_cannot_overwrite_a_newer_state(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    job_id = _queued_job(sessions, make_received())
    with sessions() as operator, sessions() as worker:
        stale = worker.get(Job, job_id)
        assert stale is not None
        jobs.cancel_job(operator, job_id)
        operator.commit()
        with pytest.raises(ConcurrentUpdateError, match=f"job {job_id} was changed"):
            jobs.transition(worker, stale, JobState.RUNNING, "late")
    with session_scope(sessions) as session:
        assert get_job(session, job_id).state == JobState.CANCELLED
        assert session.scalar(select(func.count(JobEvent.id))) == 2


def _seed_two_studies(sessions: sessionmaker[Session], make_received: MakeReceived) -> list[int]:
    """Two studies, three jobs, created a day apart; ids in creation order."""
    with session_scope(sessions) as session:
        ids = []
        for n, (patient, accession) in enumerate([("P1", "A1"), ("P1", "A1"), ("P2", "A2")]):
            received = make_received(
                study_instance_uid=f"1.{patient}",
                series_instance_uid=f"1.{patient}.{n}",
                patient_id=patient,
                accession_number=accession,
            )
            record_instance(session, received)
            series = _series(session, received.series_instance_uid)
            when = T0 + timedelta(days=n)
            ids.append(
                jobs.create_job(
                    session, series, pipeline="lung", rule="ct", priority=n, now=when
                ).id
            )
        jobs.cancel_job(session, ids[1], now=T0 + timedelta(days=1))
        return ids


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (JobFilter(), [2, 1, 0]),
        (JobFilter(states=(JobState.QUEUED,)), [2, 0]),
        (JobFilter(states=(JobState.CANCELLED, JobState.RUNNING)), [1]),
        (JobFilter(since=T0 + timedelta(days=1)), [2, 1]),
        (JobFilter(until=T0 + timedelta(days=1)), [0]),
        (JobFilter(since=T0, until=T0 + timedelta(days=2)), [1, 0]),
        (JobFilter(patient_id="P1"), [1, 0]),
        (JobFilter(accession_number="A2"), [2]),
        (JobFilter(patient_id="P1", states=(JobState.QUEUED,)), [0]),
        (JobFilter(limit=1), [2]),
    ],
)
def test_list_jobs_filters(
    sessions: sessionmaker[Session],
    make_received: MakeReceived,
    where: JobFilter,
    expected: list[int],
) -> None:
    ids = _seed_two_studies(sessions, make_received)
    with session_scope(sessions) as session:
        assert [job.id for job in list_jobs(session, where)] == [ids[n] for n in expected]


def test_list_studies_counts_series_and_instances(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    _seed_two_studies(sessions, make_received)
    with session_scope(sessions) as session:
        record_instance(
            session, make_received(study_instance_uid="1.P2", series_instance_uid="1.P2.2")
        )
        found = [
            (s.study.patient_id, s.series_count, s.instance_count) for s in list_studies(session)
        ]
        assert found == [("P2", 1, 2), ("P1", 2, 2)]
        assert [s.study.accession_number for s in list_studies(session, patient_id="P2")] == ["A2"]
        assert list_studies(session, accession_number="none") == []


def test_job_detail_carries_results_and_exports(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    job_id = _queued_job(sessions, make_received())
    with session_scope(sessions) as session:
        result = result_row("results/1/seg.dcm", job_id=job_id)
        result.exports.append(Export(destination="local", state=ExportState.PENDING, attempts=0))
        session.add(result)
    with session_scope(sessions) as session:
        detail = JobDetail.model_validate(get_job(session, job_id))
    assert [(r.kind, r.path) for r in detail.results] == [(ResultKind.SEG, "results/1/seg.dcm")]
    assert [(x.destination, x.state) for x in detail.results[0].exports] == [
        ("local", ExportState.PENDING)
    ]
    assert detail.series.study.patient_id == "PAT-1"
    with session_scope(sessions) as session, pytest.raises(IntegrityError):
        session.add(
            Export(
                result_id=detail.results[0].id,
                destination="local",
                state=ExportState.PENDING,
                attempts=0,
            )
        )
        session.flush()


def test_a_batch_records_new_changed_and_known_instances_at_once(
    sessions: sessionmaker[Session], make_received: MakeReceived
) -> None:
    known, changed = make_received(), make_received()
    with session_scope(sessions) as session:
        record_instances(session, [known, changed])
    batch = [
        make_received(**_same(known)),  # the same bytes again: no change
        make_received(sop_instance_uid=changed.sop_instance_uid, spool_path="incoming/v2.dcm"),
        make_received(),
        make_received(),
        make_received(series_instance_uid="9.9"),
    ]

    with session_scope(sessions) as session:
        assert record_instances(session, batch) == 4

    with session_scope(sessions) as session:
        assert session.scalar(select(func.count(Instance.id))) == 5
        assert _series(session, known.series_instance_uid).instance_count == 4
        assert _series(session, "9.9").instance_count == 1
        replaced = session.scalars(
            select(Instance).where(Instance.sop_instance_uid == changed.sop_instance_uid)
        ).one()
        assert replaced.spool_path == "incoming/v2.dcm"
    with session_scope(sessions) as session:
        assert record_instances(session, batch) == 0
