"""Re-indexing the spool into a SQLite job database: what gets a row, and what does not."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Instance, Series
from agent.db.recorder import DatabaseRecorder
from agent.db.session import session_scope
from agent.dimse.ingest import Ingestor
from agent.reindex import reindex_spool
from agent.spool import Spool, instance_relative_path
from tests.conftest import ct_header, part10

STUDY = "1.2.826.0.1.3680043.10.77.1"
SERIES = "1.2.826.0.1.3680043.10.77.2"
OTHER_SERIES = "1.2.826.0.1.3680043.10.77.3"
RECEIVED = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


def slice_bytes(number: int, series_uid: str = SERIES) -> bytes:
    dataset = ct_header(STUDY, series_uid, number, float(number))
    dataset.SOPInstanceUID = f"{SERIES}.{number}"  # the same instance whatever its series
    return part10(dataset)


def spooled_only(spool: Spool, raw: bytes, number: int, series_uid: str = SERIES) -> Path:
    """`raw` durably in the spool with no index row: what a receiver that died leaves."""
    stored = spool.store(raw, study_uid=STUDY, series_uid=series_uid, sop_uid=f"{SERIES}.{number}")
    timestamp = RECEIVED.timestamp()
    os.utime(stored.path, (timestamp, timestamp))
    return stored.path


def rows(sessions: sessionmaker[Session]) -> list[Instance]:
    with session_scope(sessions) as session:
        return list(session.scalars(select(Instance).order_by(Instance.instance_number)))


def test_spooled_instances_without_rows_get_them(
    spool: Spool, sqlite_sessions: sessionmaker[Session]
) -> None:
    Ingestor(spool, DatabaseRecorder(sqlite_sessions)).ingest(slice_bytes(1), calling_ae="CT")
    lost = {number: slice_bytes(number) for number in (2, 3)}
    for number, raw in lost.items():
        spooled_only(spool, raw, number)

    assert reindex_spool(spool, sqlite_sessions) == 2

    first, *recovered = rows(sqlite_sessions)
    assert first.calling_ae == "CT"
    for row, (number, raw) in zip(recovered, lost.items(), strict=True):
        assert row.sop_instance_uid == f"{SERIES}.{number}"
        assert row.spool_path == instance_relative_path(STUDY, SERIES, row.sop_instance_uid)
        assert (row.sha256, row.size_bytes) == (hashlib.sha256(raw).hexdigest(), len(raw))
        assert (row.received_at, row.calling_ae) == (RECEIVED, "")
    with session_scope(sqlite_sessions) as session:
        assert session.scalars(select(Series)).one().instance_count == 3
    assert reindex_spool(spool, sqlite_sessions) == 0


def test_the_old_file_of_an_instance_that_moved_series_stays_unindexed(
    spool: Spool, sqlite_sessions: sessionmaker[Session]
) -> None:
    ingestor = Ingestor(spool, DatabaseRecorder(sqlite_sessions))
    ingestor.ingest(slice_bytes(1), calling_ae="CT")
    ingestor.ingest(slice_bytes(1, OTHER_SERIES), calling_ae="CT")  # re-sent into another

    assert reindex_spool(spool, sqlite_sessions) == 0

    [row] = rows(sqlite_sessions)
    assert row.spool_path == instance_relative_path(STUDY, OTHER_SERIES, f"{SERIES}.1")


def test_an_unreadable_spooled_file_is_logged_and_skipped(
    spool: Spool, sqlite_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    spooled_only(spool, b"\x00" * 128 + b"DICM" + b"\x02\x00", 1)
    spooled_only(spool, slice_bytes(2), 2)

    assert reindex_spool(spool, sqlite_sessions) == 1

    assert [row.instance_number for row in rows(sqlite_sessions)] == [2]
    assert "is unreadable; not indexed" in caplog.text
