"""Receiving one instance, independent of the transport: read the header, spool, record.

The DIMSE handler calls `Ingestor.ingest` with the Part 10 bytes it received; nothing here
knows about pynetdicom, so STOW-RS can use the same path.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset

from agent.errors import SopClassMismatchError, UnparsableInstanceError
from agent.received import ReceivedInstance
from agent.spool import Spool, StoredFile

LOGGER = logging.getLogger(__name__)

_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_HEADER_TAGS = [
    *_REQUIRED_UIDS,
    "Modality",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
]


class InstanceRecorder(Protocol):
    """Indexes an instance that is durably in the spool; must be idempotent per SOP UID."""

    def record(self, instance: ReceivedInstance) -> None: ...


@dataclass(frozen=True)
class InstanceHeader:
    """The identifying and routing tags of a received instance: `ReceivedInstance`'s tag part."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    modality: str
    patient_id: str
    patient_name: str
    accession_number: str
    study_date: str
    series_description: str
    series_number: int | None
    instance_number: int | None


def read_header(raw: bytes) -> InstanceHeader:
    """Read only the header tags of a Part 10 file; no pixel data is read or decoded.

    Raises `UnparsableInstanceError` when pydicom cannot read it, a UID is missing, or the
    dataset's UIDs differ from those announced in the file meta (the C-STORE request's).
    """
    try:
        dataset = dcmread(BytesIO(raw), stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        uids = {keyword: _text(dataset, keyword) for keyword in _REQUIRED_UIDS}
        meta = dataset.file_meta
        transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
        announced = (
            str(meta.get("MediaStorageSOPClassUID", "")),
            str(meta.get("MediaStorageSOPInstanceUID", "")),
        )
    except Exception as exc:  # pydicom raises many types on malformed input
        raise UnparsableInstanceError(f"cannot read the DICOM header: {exc!r}") from exc
    missing = [keyword for keyword, value in uids.items() if not value]
    if missing:
        raise UnparsableInstanceError(f"missing {', '.join(missing)}")
    _check_announced(uids, *announced)
    return InstanceHeader(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        modality=_optional_text(dataset, "Modality"),
        patient_id=_optional_text(dataset, "PatientID"),
        patient_name=_optional_text(dataset, "PatientName"),
        accession_number=_optional_text(dataset, "AccessionNumber"),
        study_date=_optional_text(dataset, "StudyDate"),
        series_description=_optional_text(dataset, "SeriesDescription"),
        series_number=_optional_int(dataset, "SeriesNumber"),
        instance_number=_optional_int(dataset, "InstanceNumber"),
    )


class Ingestor:
    """Check, store (or quarantine), record: what every receive path does with one instance."""

    def __init__(self, spool: Spool, recorder: InstanceRecorder) -> None:
        self._spool = spool
        self._recorder = recorder

    def ingest(self, raw: bytes, *, calling_ae: str) -> ReceivedInstance:
        """Make `raw` durable and recorded, or quarantine it and raise.

        Raises `UnparsableInstanceError` (after quarantining), `SpoolError` (nothing kept:
        the sender must retry) or whatever the recorder raises (the bytes stay spooled, and
        a re-send records them again).
        """
        try:
            header = read_header(raw)
        except UnparsableInstanceError as exc:
            path = self._spool.quarantine(raw, exc.reason, calling_ae)
            LOGGER.warning("quarantined %d bytes from %r as %s", len(raw), calling_ae, path.name)
            raise
        stored = self._spool.store(
            raw,
            study_uid=header.study_instance_uid,
            series_uid=header.series_instance_uid,
            sop_uid=header.sop_instance_uid,
        )
        instance = _received_instance(header, stored, calling_ae)
        self._recorder.record(instance)
        return instance


def _check_announced(uids: dict[str, str], sop_class: str, sop_instance: str) -> None:
    if sop_class and sop_class != uids["SOPClassUID"]:
        raise SopClassMismatchError(
            f"SOP Class UID {uids['SOPClassUID']} in the dataset, {sop_class} announced"
        )
    if sop_instance and sop_instance != uids["SOPInstanceUID"]:
        raise UnparsableInstanceError(
            f"SOP Instance UID {uids['SOPInstanceUID']} in the dataset, {sop_instance} announced"
        )


def _received_instance(
    header: InstanceHeader, stored: StoredFile, calling_ae: str
) -> ReceivedInstance:
    return ReceivedInstance(
        **asdict(header),
        spool_path=stored.relative_path,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        received_at=datetime.now(UTC),
        calling_ae=calling_ae,
    )


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def _optional_text(dataset: Dataset, keyword: str) -> str:
    """A tag's value as text; an unreadable optional value is empty, never a quarantine."""
    try:
        return _text(dataset, keyword)
    except (ValueError, TypeError, LookupError) as exc:
        LOGGER.debug("unreadable optional tag %s: %s", keyword, type(exc).__name__)
        return ""


def _optional_int(dataset: Dataset, keyword: str) -> int | None:
    try:
        return int(_optional_text(dataset, keyword))
    except ValueError:
        return None
