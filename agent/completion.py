"""Completion: when a received series is ready, and what becomes of it then.

A series is ready once no instance has arrived for `series_stable_seconds` (receiving ->
ready). A ready series is then decided, in this order:

1. routing picks a rule from the header of its first instance (lowest InstanceNumber);
   none: skipped, "no rule matched";
2. the headers of all its instances must form one volume (`models.volume.check_series`):
   otherwise skipped, "not a volume: <why>" (a localizer, a missing slice, ...);
3. a queued job for the rule's pipeline is created; the series' earlier jobs, if late
   instances had re-opened it, are superseded by it; the series is queued.

The skip reason is kept in `series.skip_reason`. Headers are read outside any transaction
(a large series takes a while); each decision is then written under a guard on the series
state, so an instance recorded meanwhile (it puts the series back to receiving) wins, and
the series is decided again once it is quiet. A series left ready by a crash is decided on
the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from agent import routing
from agent.config import Rule
from agent.db.enums import JobState, SeriesState
from agent.db.models import Instance, Series, utcnow
from agent.db.session import rows_affected, session_scope
from agent.jobs import QueuedJob, can_transition, create_job, supersede_job
from agent.spool import Spool
from models.errors import NotAVolumeError
from models.volume import check_series

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadySeries:
    """A series waiting for its decision, with its instances' spool paths (first first)."""

    series_id: int
    spool_paths: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to do with a ready series: run `rule`, or skip it for `skip_reason`."""

    rule: Rule | None
    skip_reason: str | None = None


def mark_ready(session: Session, stable_seconds: float, now: datetime) -> int:
    """Receiving series quiet for `stable_seconds` become ready; how many did."""
    cutoff = now - timedelta(seconds=stable_seconds)
    return rows_affected(
        session,
        update(Series)
        .where(Series.state == SeriesState.RECEIVING, Series.last_received_at <= cutoff)
        .values(state=SeriesState.READY)
        .execution_options(synchronize_session=False),
    )


def ready_series(session: Session) -> list[ReadySeries]:
    """Every ready series, oldest first, with its instances in InstanceNumber order."""
    series_ids = session.scalars(
        select(Series.id).where(Series.state == SeriesState.READY).order_by(Series.id)
    ).all()
    ready = []
    for series_id in series_ids:
        paths = session.scalars(
            select(Instance.spool_path)
            .where(Instance.series_id == series_id)
            .order_by(Instance.instance_number, Instance.id)
        ).all()
        ready.append(ReadySeries(series_id, tuple(paths)))
    return ready


def read_headers(spool: Spool, spool_paths: Sequence[str]) -> list[Dataset]:
    """The headers (no pixel data) of spooled instances, in the given order."""
    return [dcmread(spool.path_of(path), stop_before_pixels=True) for path in spool_paths]


def decide(rules: Sequence[Rule], headers: Sequence[Dataset]) -> Decision:
    """Route by the first header, then require one regular volume; see the module doc."""
    if not headers:
        return Decision(None, "the series has no instances")
    rule = routing.explain(rules, headers[0]).chosen
    if rule is None:
        return Decision(None, routing.NO_RULE_MATCHED)
    try:
        check_series(headers)
    except NotAVolumeError as exc:
        return Decision(None, f"not a volume: {exc}")
    return Decision(rule)


def apply_decision(
    session: Session, series_id: int, decision: Decision, now: datetime
) -> QueuedJob | None:
    """Write `decision` for a series that is still ready; the new job, if one was made.

    Does nothing (returns None) when the series left the ready state meanwhile.
    """
    target = SeriesState.SKIPPED if decision.rule is None else SeriesState.QUEUED
    changed = rows_affected(
        session,
        update(Series)
        .where(Series.id == series_id, Series.state == SeriesState.READY)
        .values(state=target, skip_reason=decision.skip_reason)
        .execution_options(synchronize_session=False),
    )
    if not changed:
        log.info("series %d changed while being decided; it will be decided again", series_id)
        return None
    if decision.rule is None:
        log.info("series %d skipped: %s", series_id, decision.skip_reason)
        return None
    return _queue_job(session, series_id, decision.rule, now)


def _queue_job(session: Session, series_id: int, rule: Rule, now: datetime) -> QueuedJob:
    series = session.get(Series, series_id, populate_existing=True)
    assert series is not None  # the guarded update above just found it
    earlier = list(series.jobs)
    job = create_job(
        session, series, pipeline=rule.pipeline, rule=rule.name, priority=rule.priority, now=now
    )
    for old in earlier:
        if can_transition(old.state, JobState.SUPERSEDED):
            supersede_job(session, old, job, now=now)
    log.info("series %d queued as job %d (rule %s)", series_id, job.id, rule.name)
    return QueuedJob(job.id, job.priority)


def _decide_series(spool: Spool, rules: Sequence[Rule], ready: ReadySeries) -> Decision:
    try:
        headers = read_headers(spool, ready.spool_paths)
    except (OSError, InvalidDicomError, ValueError) as exc:
        return Decision(None, f"cannot read the headers of its instances: {exc}")
    return decide(rules, headers)


def advance_series(
    sessions: sessionmaker[Session],
    spool: Spool,
    rules: Sequence[Rule],
    stable_seconds: float,
    now: datetime | None = None,
) -> list[QueuedJob]:
    """One pass: mark quiet series ready and decide every ready series; the new jobs.

    Each decision is its own transaction; the caller sends the jobs' messages afterwards.
    """
    now = now or utcnow()
    with session_scope(sessions) as session:
        mark_ready(session, stable_seconds, now)
        waiting = ready_series(session)
    queued = []
    for ready in waiting:
        decision = _decide_series(spool, rules, ready)
        with session_scope(sessions) as session:
            job = apply_decision(session, ready.series_id, decision, now)
        if job is not None:
            queued.append(job)
    return queued
