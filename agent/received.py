"""The record of one instance that is durably in the spool: what ingest hands to the index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReceivedInstance:
    """Identity and routing-relevant tags of an instance, read once at receive time.

    `spool_path` is relative to the spool directory and never derived from raw UIDs.
    """

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    spool_path: str
    size_bytes: int
    sha256: str
    received_at: datetime
    calling_ae: str
    modality: str = ""
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
