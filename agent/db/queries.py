"""Plain query and mutation functions over the job database; callers own the session.

Job state changes live in `agent.jobs`; this module indexes received instances and answers
the admin surface's questions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session, contains_eager, selectinload

from agent.db.enums import JobState, SeriesState
from agent.db.models import Base, Instance, Job, Result, Series, Study
from agent.db.session import rows_affected
from agent.errors import NotFoundError
from agent.received import ReceivedInstance

log = logging.getLogger(__name__)

Row = TypeVar("Row", bound=Base)

DECIDED_STATES = (SeriesState.QUEUED, SeriesState.SKIPPED, SeriesState.DONE)
"""Series states after routing has decided; new data in such a series re-opens it."""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs `list_jobs` returns; `since` is inclusive, `until` exclusive (created_at)."""

    states: tuple[JobState, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    limit: int | None = 100


@dataclass(frozen=True)
class StudySummary:
    study: Study
    series_count: int
    instance_count: int


def parse_dicom_date(value: str) -> date | None:
    """A DICOM DA value (`YYYYMMDD`, or the old `YYYY.MM.DD`) as a date; None if unusable."""
    try:
        return datetime.strptime(value.strip().replace(".", ""), "%Y%m%d").date()
    except ValueError:
        return None


def _insert_ignoring_conflict(session: Session, model: type[Base]) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING` for this session's backend (safe under races).

    Into the model's table, not the ORM entity, so that a list of rows runs as one
    executemany of one compiled statement, with its row count.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(cast(Table, model.__table__)).on_conflict_do_nothing()


def _get_or_insert(
    session: Session, model: type[Row], key: InstrumentedAttribute[str], values: dict[str, Any]
) -> Row:
    """The row whose unique `key` equals `values[key]`, inserting it from `values` if missing."""
    wanted = select(model).where(key == values[key.key])
    row = session.scalars(wanted).one_or_none()
    if row is None:
        session.execute(_insert_ignoring_conflict(session, model).values(values))
        row = session.scalars(wanted).one()
    return row


def _study_for(session: Session, received: ReceivedInstance) -> Study:
    values = {
        "study_instance_uid": received.study_instance_uid,
        "patient_id": received.patient_id,
        "patient_name": received.patient_name,
        "accession_number": received.accession_number,
        "study_date": parse_dicom_date(received.study_date),
    }
    return _get_or_insert(session, Study, Study.study_instance_uid, values)


def _series_for(session: Session, received: ReceivedInstance, study: Study) -> Series:
    values = {
        "series_instance_uid": received.series_instance_uid,
        "study_id": study.id,
        "modality": received.modality,
        "description": received.series_description,
        "series_number": received.series_number,
        "state": SeriesState.RECEIVING,
        "last_received_at": received.received_at,
        "instance_count": 0,
        "reopened": 0,
    }
    return _get_or_insert(session, Series, Series.series_instance_uid, values)


def _instance_values(received: ReceivedInstance) -> dict[str, Any]:
    return {
        "sop_instance_uid": received.sop_instance_uid,
        "sop_class_uid": received.sop_class_uid,
        "transfer_syntax_uid": received.transfer_syntax_uid,
        "spool_path": received.spool_path,
        "size_bytes": received.size_bytes,
        "sha256": received.sha256,
        "instance_number": received.instance_number,
        "received_at": received.received_at,
        "calling_ae": received.calling_ae,
    }


def _count_into_series(session: Session, series: Series, at: datetime, added: int) -> None:
    """New data in `series`: it is receiving again, and re-opened if routing had decided."""
    reopens = case((Series.state.in_(DECIDED_STATES), 1), else_=0)
    session.execute(
        update(Series)
        .where(Series.id == series.id)
        .values(
            last_received_at=at,
            instance_count=Series.instance_count + added,
            reopened=Series.reopened + reopens,
            state=SeriesState.RECEIVING,
            skip_reason=None,
        )
        .execution_options(synchronize_session=False)
    )
    if series.state in DECIDED_STATES:
        log.info("series %d re-opened by new data", series.id)
    session.expire(series)


def _replace_instance(
    session: Session, instance: Instance, received: ReceivedInstance, series: Series
) -> None:
    """A re-send with other bytes under the same SOP Instance UID replaces the old file."""
    for name, value in _instance_values(received).items():
        setattr(instance, name, value)
    instance.series = series
    log.warning("instance %d re-sent with different content; replaced", instance.id)
    session.flush()


def record_instance(session: Session, received: ReceivedInstance) -> bool:
    """Index one spooled instance; True if the database changed.

    Idempotent: an identical re-send (same SOP Instance UID, same bytes) changes nothing.
    New or changed data creates the study and series rows as needed, bumps the series'
    `last_received_at` and puts it back to `receiving`, counting a re-open if routing had
    already decided on it (queued, skipped or done).
    """
    return record_instances(session, [received]) > 0


def record_instances(session: Session, received: Sequence[ReceivedInstance]) -> int:
    """Index a batch of spooled instances as `record_instance` does each; how many changed.

    New instances of one series go in with one INSERT and are counted into their series
    once; of several records with one SOP Instance UID, the last one counts.
    """
    latest = {instance.sop_instance_uid: instance for instance in received}
    known = select(Instance).where(Instance.sop_instance_uid.in_(list(latest)))
    existing = {row.sop_instance_uid: row for row in session.scalars(known)}
    new_by_series: dict[str, list[ReceivedInstance]] = defaultdict(list)
    changed = 0
    for uid, instance in latest.items():
        row = existing.get(uid)
        if row is None:
            new_by_series[instance.series_instance_uid].append(instance)
        elif row.sha256 != instance.sha256:
            _replace_existing(session, row, instance)
            changed += 1
    for group in new_by_series.values():
        changed += _insert_new(session, group)
    return changed


def _insert_new(session: Session, group: Sequence[ReceivedInstance]) -> int:
    """Insert new instances of one series (a concurrent insert of one of them wins)."""
    series = _series_for(session, group[0], _study_for(session, group[0]))
    rows = [{**_instance_values(instance), "series_id": series.id} for instance in group]
    added = rows_affected(session, _insert_ignoring_conflict(session, Instance), rows)
    if added:
        _count_into_series(session, series, max(i.received_at for i in group), added=added)
    return added


def _replace_existing(session: Session, existing: Instance, received: ReceivedInstance) -> None:
    series = _series_for(session, received, _study_for(session, received))
    moved_from = existing.series if existing.series_id != series.id else None
    _replace_instance(session, existing, received, series)
    if moved_from is not None:
        _count_into_series(session, moved_from, received.received_at, added=-1)
    _count_into_series(session, series, received.received_at, added=int(moved_from is not None))


def get_job(session: Session, job_id: int) -> Job:
    """The job with its series, study, events, results and exports loaded; NotFoundError if none."""
    job = session.get(
        Job,
        job_id,
        options=[
            selectinload(Job.series).selectinload(Series.study),
            selectinload(Job.events),
            selectinload(Job.results).selectinload(Result.exports),
        ],
        populate_existing=True,
    )
    if job is None:
        raise NotFoundError("job", job_id)
    return job


def list_jobs(session: Session, where: JobFilter) -> list[Job]:
    """Jobs matching `where`, newest first, each with its series and study loaded."""
    stmt = (
        select(Job)
        .join(Job.series)
        .join(Series.study)
        .options(contains_eager(Job.series).contains_eager(Series.study))
        .order_by(Job.id.desc())
        .limit(where.limit)
    )
    if where.states:
        stmt = stmt.where(Job.state.in_(where.states))
    if where.since is not None:
        stmt = stmt.where(Job.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(Job.created_at < where.until)
    if where.patient_id is not None:
        stmt = stmt.where(Study.patient_id == where.patient_id)
    if where.accession_number is not None:
        stmt = stmt.where(Study.accession_number == where.accession_number)
    return list(session.scalars(stmt))


def list_studies(
    session: Session,
    *,
    patient_id: str | None = None,
    accession_number: str | None = None,
    limit: int | None = 100,
) -> list[StudySummary]:
    """Studies, newest first, with how many series and instances each holds."""
    stmt = (
        select(
            Study,
            func.count(Series.id),
            func.coalesce(func.sum(Series.instance_count), 0),
        )
        .outerjoin(Study.series)
        .group_by(Study.id)
        .order_by(Study.id.desc())
        .limit(limit)
    )
    if patient_id is not None:
        stmt = stmt.where(Study.patient_id == patient_id)
    if accession_number is not None:
        stmt = stmt.where(Study.accession_number == accession_number)
    return [
        StudySummary(study, series, instances) for study, series, instances in session.execute(stmt)
    ]


def series_of_studies(session: Session, study_ids: Sequence[int]) -> dict[int, list[Series]]:
    """The series of each study in `study_ids` (by series number), keyed by study id."""
    found: dict[int, list[Series]] = {study_id: [] for study_id in study_ids}
    stmt = (
        select(Series)
        .where(Series.study_id.in_(study_ids))
        .order_by(Series.study_id, Series.series_number, Series.id)
    )
    for series in session.scalars(stmt):
        found[series.study_id].append(series)
    return found


def expired_jobs(session: Session, now: datetime) -> list[Job]:
    """Running jobs whose lease ran out before `now`: their worker is presumed dead."""
    stmt = (
        select(Job)
        .where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
        .order_by(Job.priority.desc(), Job.id)
    )
    return list(session.scalars(stmt))


def count_jobs_by_state(session: Session) -> dict[JobState, int]:
    """How many jobs are in each state; every state is present, zero included."""
    counts = dict.fromkeys(JobState, 0)
    stmt = select(Job.state, func.count(Job.id)).group_by(Job.state)
    for state, count in session.execute(stmt):
        counts[state] = count
    return counts


def count_instances(session: Session) -> int:
    """How many received instances the database indexes."""
    return session.scalar(select(func.count(Instance.id))) or 0
