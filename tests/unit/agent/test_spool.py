"""The spool: hashed names, atomic writes, harmless re-sends, quarantine with reasons."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from agent.errors import SpoolFullError
from agent.spool import Spool, StoreOutcome, uid_hash
from tests.support.mounts import mounted

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.2"
SOP = "1.2.826.0.1.3680043.8.498.1.2.3"
PAYLOAD = b"\x00" * 128 + b"DICM" + b"not parsed by the spool"


def _h(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


def test_store_names_the_file_by_hashes_of_the_uids(spool: Spool) -> None:
    stored = spool.store(PAYLOAD, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)

    expected = f"instances/{_h(STUDY)[:2]}/{_h(STUDY)}/{_h(SERIES)}/{_h(SOP)}.dcm"
    assert stored.relative_path == expected
    assert stored.path == spool.root / expected
    assert stored.path.read_bytes() == PAYLOAD
    assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert stored.size_bytes == len(PAYLOAD)
    assert stored.outcome is StoreOutcome.NEW
    assert uid_hash(SOP) == _h(SOP)
    assert SOP not in str(stored.path)
    assert list((spool.root / "tmp").iterdir()) == []


def test_store_accepts_a_file_like_object(spool: Spool) -> None:
    stored = spool.store(BytesIO(PAYLOAD), study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)

    assert stored.path.read_bytes() == PAYLOAD
    assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest()


def test_identical_resend_writes_nothing_new(spool: Spool) -> None:
    first = spool.store(PAYLOAD, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)
    mtime = first.path.stat().st_mtime_ns

    again = spool.store(PAYLOAD, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)

    assert again.outcome is StoreOutcome.DUPLICATE
    assert again.path == first.path
    assert again.path.stat().st_mtime_ns == mtime
    assert [p for p in (spool.root / "instances").rglob("*") if p.is_file()] == [first.path]
    assert list((spool.root / "tmp").iterdir()) == []


def test_different_bytes_for_the_same_sop_keep_the_newest(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    spool.store(PAYLOAD, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)
    newer = PAYLOAD + b" corrected"

    stored = spool.store(newer, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)

    assert stored.outcome is StoreOutcome.REPLACED
    assert stored.path.read_bytes() == newer
    assert "same SOP Instance UID, different bytes" in caplog.text
    assert SOP not in caplog.text


def test_quarantine_keeps_the_bytes_and_the_reason(spool: Spool) -> None:
    path = spool.quarantine(b"garbage", "missing StudyInstanceUID", peer="MODALITY1")

    assert path.parent == spool.root / "quarantine"
    assert path.read_bytes() == b"garbage"
    note = json.loads(path.with_name(path.stem + ".reason.json").read_text())
    assert note["reason"] == "missing StudyInstanceUID"
    assert note["calling_ae"] == "MODALITY1"
    assert note["size_bytes"] == len(b"garbage")
    assert note["received_at"]
    [listed] = spool.list_quarantine()
    assert listed.path == path
    assert listed.reason == "missing StudyInstanceUID"
    assert listed.calling_ae == "MODALITY1"
    assert listed.size_bytes == len(b"garbage")


def test_quarantine_lists_a_file_whose_reason_was_lost(spool: Spool) -> None:
    path = spool.quarantine(b"garbage", "unreadable", peer="MODALITY1")
    path.with_name(path.stem + ".reason.json").unlink()

    [listed] = spool.list_quarantine()

    assert listed.path == path
    assert "missing" in listed.reason


def test_two_quarantines_never_share_a_name(spool: Spool) -> None:
    first = spool.quarantine(b"a", "r", peer="X")
    second = spool.quarantine(b"b", "r", peer="X")

    assert first != second
    assert len(spool.list_quarantine()) == 2


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "instances/../../x"])
def test_path_of_refuses_paths_outside_the_spool(spool: Spool, bad: str) -> None:
    with pytest.raises(ValueError, match="not a path inside the spool"):
        spool.path_of(bad)


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs."""
    with mounted(tmp_path / "tiny", "tmpfs", "size=64k") as mount_point:
        yield mount_point


def test_a_full_disk_raises_a_typed_error_and_leaves_nothing(tiny_filesystem: Path) -> None:
    spool = Spool(tiny_filesystem / "spool")

    with pytest.raises(SpoolFullError):
        spool.store(b"x" * 256 * 1024, study_uid=STUDY, series_uid=SERIES, sop_uid=SOP)
    with pytest.raises(SpoolFullError):
        spool.quarantine(b"x" * 256 * 1024, "whatever", peer="X")

    assert [p for p in spool.root.rglob("*") if p.is_file()] == []
