"""Fixtures any test may use; those needing real servers come from `tests.support.fixtures`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from sqlalchemy.orm import Session, sessionmaker

from agent.db.enums import ResultKind
from agent.db.models import Base, Result
from agent.db.session import create_db_engine, session_factory
from agent.received import ReceivedInstance

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
RESULT_SOP_CLASSES = {
    ResultKind.SEG: "1.2.840.10008.5.1.4.1.1.66.4",
    ResultKind.SR: "1.2.840.10008.5.1.4.1.1.88.34",
    ResultKind.SC: "1.2.840.10008.5.1.4.1.1.7",
}

pytest_plugins = ["tests.support.fixtures", "tests.support.scp"]

MakeReceived = Callable[..., ReceivedInstance]


@pytest.fixture
def make_received() -> MakeReceived:
    """A factory of ReceivedInstance records: one CT series of one study unless overridden;
    every call gets a new SOP Instance UID, spool path and hash."""
    counter = itertools.count(1)

    def make(**overrides: Any) -> ReceivedInstance:
        number = next(counter)
        values: dict[str, Any] = {
            "sop_instance_uid": f"1.2.826.0.1.3680043.10.1.{number}",
            "sop_class_uid": CT_IMAGE_STORAGE,
            "series_instance_uid": "1.2.826.0.1.3680043.10.2.1",
            "study_instance_uid": "1.2.826.0.1.3680043.10.3.1",
            "transfer_syntax_uid": EXPLICIT_VR_LITTLE_ENDIAN,
            "spool_path": f"incoming/{number:06d}.dcm",
            "size_bytes": 1000 + number,
            "sha256": f"{number:064x}",
            "received_at": datetime(2025, 1, 2, 3, 4, number % 60, tzinfo=UTC),
            "calling_ae": "CT_SCANNER",
            "modality": "CT",
            "patient_id": "PAT-1",
            "patient_name": "Doe^Jane",
            "accession_number": "ACC-1",
            "study_date": "20250102",
            "series_description": "Chest 1mm",
            "series_number": 3,
            "instance_number": number,
        }
        values.update(overrides)
        return ReceivedInstance(**values)

    return make


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a throwaway SQLite job database made from the models (no migration)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    Base.metadata.create_all(engine)
    yield session_factory(engine)
    engine.dispose()


def part10(dataset: Dataset) -> bytes:
    """`dataset` as the bytes of a DICOM Part 10 file (Explicit VR Little Endian)."""
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_header(
    study_uid: str, series_uid: str, number: int, z: float, modality: str = "CT"
) -> Dataset:
    """The header of axial slice `number` at height `z`, without pixels: enough for routing
    and the geometry check, not for loading a volume."""
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = f"{series_uid}.{number}"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows = ds.Columns = 8
    return ds


def result_row(path: str, kind: ResultKind = ResultKind.SEG, **job: Any) -> Result:
    """A result row of `kind` at spool path `path`, with placeholder UIDs (SOP 2.25.1, series
    2.25.2); `job` is `job=...` or `job_id=...`."""
    return Result(
        kind=kind,
        sop_instance_uid="2.25.1",
        sop_class_uid=RESULT_SOP_CLASSES[kind],
        series_instance_uid="2.25.2",
        path=path,
        **job,
    )
