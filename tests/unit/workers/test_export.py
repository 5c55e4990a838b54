"""Exports over a SQLite job database: folder copies, backoff against an unreachable peer,
permanent failures, and never sending twice."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.config import Settings
from agent.db.enums import ExportState, ResultKind
from agent.db.models import Export, Result, Series, utcnow
from agent.db.queries import record_instance
from agent.db.session import session_scope
from agent.spool import Spool
from tests.conftest import MakeReceived, part10
from workers.export import export_once, folder_target, retry_delay

BACKOFF = 2.0
MAX_ATTEMPTS = 3


def sr_bytes() -> bytes:
    ds = Dataset()
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = "1.2.3.4"
    return part10(ds)


RESULT_BYTES = sr_bytes()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "spool_dir": tmp_path / "spool",
            "export_backoff_seconds": BACKOFF,
            "export_max_attempts": MAX_ATTEMPTS,
            "destinations": [
                {"kind": "folder", "name": "out", "path": tmp_path / "out"},
                {
                    "kind": "dimse",
                    "name": "pacs",
                    "ae_title": "PACS",
                    "host": "127.0.0.1",
                    "port": closed_port(),
                },
                {"kind": "dicomweb", "name": "web", "url": "http://127.0.0.1:1/dicom-web"},
            ],
            "rules": [],
        }
    )


@pytest.fixture
def spool(settings: Settings) -> Spool:
    return Spool(settings.spool_dir)


@pytest.fixture
def exports(
    sqlite_sessions: sessionmaker[Session], make_received: MakeReceived, spool: Spool
) -> dict[str, int]:
    """One SR result in the spool with a pending export to each destination, by name."""
    stored = spool.store_result(
        RESULT_BYTES, study_uid="1.2", series_uid="1.2.3", sop_uid="1.2.3.4"
    )
    with session_scope(sqlite_sessions) as session:
        record_instance(session, make_received())
        series = session.scalars(select(Series)).one()
        job = jobs.create_job(session, series, pipeline="lung", rule="ct", priority=0)
        result = Result(
            job=job,
            kind=ResultKind.SR,
            sop_instance_uid="1.2.3.4",
            sop_class_uid=ComprehensiveSRStorage,
            series_instance_uid="1.2.3",
            path=stored.relative_path,
        )
        rows = {
            name: Export(result=result, destination=name, state=ExportState.PENDING, attempts=0)
            for name in ("out", "pacs", "web")
        }
        session.add_all(rows.values())
        session.flush()
        return {name: row.id for name, row in rows.items()}


def test_retry_delay_doubles() -> None:
    assert [retry_delay(n, BACKOFF) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_folder_export_copies_once(
    tmp_path: Path,
    sqlite_sessions: sessionmaker[Session],
    spool: Spool,
    settings: Settings,
    exports: dict[str, int],
) -> None:
    with session_scope(sqlite_sessions) as session:
        attempt = export_once(session, spool, settings, exports["out"])
    with session_scope(sqlite_sessions) as session:
        again = export_once(session, spool, settings, exports["out"])
        export = session.get_one(Export, exports["out"])
        target = folder_target(tmp_path / "out", export.result)
        assert (export.state, export.attempts, export.last_error) == (ExportState.SENT, 1, None)
        assert export.sent_at is not None

    assert (attempt.state, attempt.attempted, attempt.retry_in) == (ExportState.SENT, True, None)
    assert (again.state, again.attempted) == (ExportState.SENT, False)
    assert target.read_bytes() == RESULT_BYTES
    assert target.name.endswith(".dcm")
    assert target.parent.name.startswith("sr-")
    assert "1.2.3" not in str(target.relative_to(tmp_path))


def attempt_at(
    sessions: sessionmaker[Session], spool: Spool, settings: Settings, export_id: int, at: datetime
) -> tuple[bool, float | None, ExportState]:
    with session_scope(sessions) as session:
        attempt = export_once(session, spool, settings, export_id, now=at)
    return attempt.attempted, attempt.retry_in, attempt.state


def test_unreachable_peer_backs_off_then_fails(
    sqlite_sessions: sessionmaker[Session],
    spool: Spool,
    settings: Settings,
    exports: dict[str, int],
) -> None:
    pacs, start = exports["pacs"], utcnow()

    def at(seconds: float) -> tuple[bool, float | None, ExportState]:
        return attempt_at(
            sqlite_sessions, spool, settings, pacs, start + timedelta(seconds=seconds)
        )

    assert at(0) == (True, BACKOFF, ExportState.PENDING)
    assert at(BACKOFF / 4) == (False, None, ExportState.PENDING)  # not due: a duplicate message
    assert at(BACKOFF) == (True, 2 * BACKOFF, ExportState.PENDING)
    assert at(3 * BACKOFF) == (True, None, ExportState.FAILED)
    assert at(100 * BACKOFF) == (False, None, ExportState.FAILED)
    with session_scope(sqlite_sessions) as session:
        export = session.get_one(Export, pacs)
        assert export.attempts == MAX_ATTEMPTS
        assert export.next_attempt_at is None
        assert export.last_error is not None
        assert "is unreachable" in export.last_error


def test_unreachable_dicomweb_service_backs_off(
    sqlite_sessions: sessionmaker[Session],
    spool: Spool,
    settings: Settings,
    exports: dict[str, int],
) -> None:
    attempt = attempt_at(sqlite_sessions, spool, settings, exports["web"], utcnow())

    assert attempt == (True, BACKOFF, ExportState.PENDING)
    with session_scope(sqlite_sessions) as session:
        error = session.get_one(Export, exports["web"]).last_error
    assert error is not None
    assert error.startswith("STOW-RS to http://127.0.0.1:1/dicom-web/studies failed")


def test_results_of_a_superseded_job_are_withdrawn_not_sent(
    tmp_path: Path,
    sqlite_sessions: sessionmaker[Session],
    spool: Spool,
    settings: Settings,
    exports: dict[str, int],
) -> None:
    with session_scope(sqlite_sessions) as session:
        old = session.get_one(Export, exports["out"]).result.job
        newer = jobs.create_job(session, old.series, pipeline="lung", rule="ct", priority=0)
        jobs.supersede_job(session, old, newer)
    with session_scope(sqlite_sessions) as session:
        attempt = export_once(session, spool, settings, exports["out"])
        export = session.get_one(Export, exports["out"])
        state, attempts, error = export.state, export.attempts, export.last_error

    assert (attempt.state, attempt.attempted) == (ExportState.WITHDRAWN, False)
    assert (state, attempts) == (ExportState.WITHDRAWN, 0)
    assert error == f"not sent: job {old.id} was superseded by job {newer.id}"
    assert not (tmp_path / "out").exists()
