"""Completion and its decisions over a real spool and a SQLite job database: quiet series
become ready, are routed, checked as volumes, queued or skipped with their reason."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.completion import Decision, advance_series, apply_decision, mark_ready
from agent.config import Matcher, Rule
from agent.db.enums import JobState, SeriesState
from agent.db.models import Job, Series, utcnow
from agent.db.recorder import DatabaseRecorder
from agent.db.session import session_scope
from agent.dimse.ingest import Ingestor
from agent.routing import NO_RULE_MATCHED
from agent.spool import Spool
from tests.conftest import ct_header, part10

STUDY_UID = "1.2.826.0.1.3680043.10.99.1"
CHEST_SERIES = "1.2.826.0.1.3680043.10.99.2"
LOCALIZER_SERIES = "1.2.826.0.1.3680043.10.99.3"
STABLE_SECONDS = 5.0
CT_RULE = Rule(
    name="ct",
    match={"Modality": Matcher(equals="CT")},
    pipeline="lung",
    destinations=["local"],
    priority=2,
)


def header(series_uid: str, number: int, z: float, modality: str = "CT") -> bytes:
    return part10(ct_header(STUDY_UID, series_uid, number, z, modality))


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def ingestor(spool: Spool, sqlite_sessions: sessionmaker[Session]) -> Ingestor:
    return Ingestor(spool, DatabaseRecorder(sqlite_sessions))


def receive(ingestor: Ingestor, series_uid: str, zs: list[float], modality: str = "CT") -> None:
    for number, z in enumerate(zs, start=1):
        ingestor.ingest(header(series_uid, number, z, modality), calling_ae="SCANNER")


def later() -> datetime:
    return utcnow() + timedelta(seconds=STABLE_SECONDS + 1)


def series_row(sqlite_sessions: sessionmaker[Session], series_uid: str) -> Series:
    with session_scope(sqlite_sessions) as session:
        where = Series.series_instance_uid == series_uid
        return session.scalars(select(Series).where(where)).one()


def test_quiet_series_is_queued_and_localizer_skipped(
    ingestor: Ingestor, sqlite_sessions: sessionmaker[Session], spool: Spool
) -> None:
    receive(ingestor, CHEST_SERIES, [0.0, -2.5, -5.0, -7.5])
    receive(ingestor, LOCALIZER_SERIES, [0.0])

    queued = advance_series(sqlite_sessions, spool, [CT_RULE], STABLE_SECONDS, now=later())

    chest, localizer = (
        series_row(sqlite_sessions, CHEST_SERIES),
        series_row(sqlite_sessions, LOCALIZER_SERIES),
    )
    assert chest.state == SeriesState.QUEUED
    assert localizer.state == SeriesState.SKIPPED
    assert localizer.skip_reason == "not a volume: a volume needs at least 2 slices, got 1"
    with session_scope(sqlite_sessions) as session:
        (job,) = session.scalars(select(Job)).all()
        assert queued == [(job.id, CT_RULE.priority)]
        assert (job.series_id, job.state, job.pipeline, job.rule, job.priority) == (
            chest.id,
            JobState.QUEUED,
            "lung",
            "ct",
            2,
        )


def test_series_still_receiving_waits(
    ingestor: Ingestor, sqlite_sessions: sessionmaker[Session], spool: Spool
) -> None:
    receive(ingestor, CHEST_SERIES, [0.0, -2.5])
    assert advance_series(sqlite_sessions, spool, [CT_RULE], STABLE_SECONDS, now=utcnow()) == []
    assert series_row(sqlite_sessions, CHEST_SERIES).state == SeriesState.RECEIVING


@pytest.mark.parametrize(
    ("modality", "zs", "reason"),
    [
        ("MR", [0.0, -2.5, -5.0], NO_RULE_MATCHED),
        ("CT", [0.0, -2.5, -7.5, -10.0], "not a volume: 1 slice(s) missing"),
    ],
)
def test_skipped_with_reason(
    ingestor: Ingestor,
    sqlite_sessions: sessionmaker[Session],
    spool: Spool,
    modality: str,
    zs: list[float],
    reason: str,
) -> None:
    receive(ingestor, CHEST_SERIES, zs, modality)
    assert advance_series(sqlite_sessions, spool, [CT_RULE], STABLE_SECONDS, now=later()) == []
    skipped = series_row(sqlite_sessions, CHEST_SERIES)
    assert skipped.state == SeriesState.SKIPPED
    assert skipped.skip_reason is not None
    assert skipped.skip_reason.startswith(reason)


def test_late_instance_reopens_and_the_new_job_supersedes(
    ingestor: Ingestor, sqlite_sessions: sessionmaker[Session], spool: Spool
) -> None:
    receive(ingestor, CHEST_SERIES, [0.0, -2.5, -5.0])
    (first,) = advance_series(sqlite_sessions, spool, [CT_RULE], STABLE_SECONDS, now=later())
    ingestor.ingest(header(CHEST_SERIES, 4, -7.5), calling_ae="SCANNER")
    reopened = series_row(sqlite_sessions, CHEST_SERIES)
    assert (reopened.state, reopened.reopened, reopened.instance_count) == (
        SeriesState.RECEIVING,
        1,
        4,
    )

    (second,) = advance_series(sqlite_sessions, spool, [CT_RULE], STABLE_SECONDS, now=later())

    with session_scope(sqlite_sessions) as session:
        old, new = session.get_one(Job, first.id), session.get_one(Job, second.id)
        assert (old.state, old.superseded_by) == (JobState.SUPERSEDED, second.id)
        assert new.state == JobState.QUEUED


def test_instance_arriving_during_the_decision_wins(
    ingestor: Ingestor, sqlite_sessions: sessionmaker[Session]
) -> None:
    receive(ingestor, CHEST_SERIES, [0.0, -2.5])
    with session_scope(sqlite_sessions) as session:
        assert mark_ready(session, STABLE_SECONDS, later()) == 1
    ingestor.ingest(header(CHEST_SERIES, 3, -5.0), calling_ae="SCANNER")
    series_id = series_row(sqlite_sessions, CHEST_SERIES).id

    with session_scope(sqlite_sessions) as session:
        assert apply_decision(session, series_id, Decision(CT_RULE), later()) is None
        assert session.scalars(select(Job)).all() == []
    assert series_row(sqlite_sessions, CHEST_SERIES).state == SeriesState.RECEIVING
