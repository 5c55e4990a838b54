"""Receiving one instance without a network: header reading, spooling, quarantine, statuses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pynetdicom.dsutils import split_dataset

from agent.dimse.header import read_header
from agent.dimse.ingest import Ingestor
from agent.dimse.status import Status, status_for
from agent.errors import (
    SopClassMismatchError,
    SpoolFullError,
    StudyMismatchError,
    UnparsableInstanceError,
)
from agent.received import ReceivedInstance
from agent.spool import Spool


class ListRecorder:
    def __init__(self) -> None:
        self.instances: list[ReceivedInstance] = []

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        self.instances.extend(instances)


class BrokenRecorder:
    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        raise RuntimeError("database is down")


def ct_small() -> Path:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return Path(path)


def test_read_header_reads_identity_and_routing_tags() -> None:
    header = read_header(ct_small().read_bytes())

    assert header.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert header.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert header.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert header.modality == "CT"
    assert header.patient_id == "1CT1"
    assert header.patient_name == "CompressedSamples^CT1"
    assert header.series_number == 1
    assert header.instance_number == 1


def test_read_header_refuses_a_truncated_dataset() -> None:
    _, offset = split_dataset(ct_small())

    with pytest.raises(UnparsableInstanceError, match="missing SOPClassUID"):
        read_header(ct_small().read_bytes()[: offset + 60])


def test_read_header_refuses_bytes_that_are_not_dicom() -> None:
    with pytest.raises(UnparsableInstanceError, match="cannot read the DICOM header"):
        read_header(b"this is not a DICOM file at all")


def test_read_header_refuses_a_dataset_that_contradicts_its_meta() -> None:
    raw = (
        ct_small()
        .read_bytes()
        .replace(b"1.2.840.10008.5.1.4.1.1.2\x00", b"1.2.840.10008.5.1.4.1.1.4\x00", 1)
    )

    with pytest.raises(SopClassMismatchError, match="announced"):
        read_header(raw)


def test_ingest_spools_and_records(tmp_path: Path) -> None:
    spool, recorder = Spool(tmp_path), ListRecorder()
    raw = ct_small().read_bytes()

    instance = Ingestor(spool, recorder).ingest(raw, calling_ae="CT01")

    assert recorder.instances == [instance]
    assert instance.calling_ae == "CT01"
    assert instance.size_bytes == len(raw)
    assert spool.path_of(instance.spool_path).read_bytes() == raw


def test_ingest_quarantines_what_it_cannot_read(tmp_path: Path) -> None:
    spool, recorder = Spool(tmp_path), ListRecorder()

    with pytest.raises(UnparsableInstanceError):
        Ingestor(spool, recorder).ingest(b"garbage", calling_ae="CT01")

    [quarantined] = spool.list_quarantine()
    assert quarantined.calling_ae == "CT01"
    assert quarantined.reason.startswith("cannot read the DICOM header")
    assert recorder.instances == []


def test_ingest_for_one_study_refuses_an_instance_of_another(tmp_path: Path) -> None:
    spool, recorder = Spool(tmp_path), ListRecorder()
    raw = ct_small().read_bytes()
    study = dcmread(ct_small()).StudyInstanceUID

    with pytest.raises(StudyMismatchError):
        Ingestor(spool, recorder).ingest(raw, calling_ae="STOW-RS", study_instance_uid="1.2.3")
    kept = Ingestor(spool, recorder).ingest(raw, calling_ae="STOW-RS", study_instance_uid=study)

    assert recorder.instances == [kept]
    assert spool.list_quarantine() == []


def test_a_failing_recorder_leaves_the_bytes_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    with pytest.raises(RuntimeError, match="database is down"):
        Ingestor(spool, BrokenRecorder()).ingest(ct_small().read_bytes(), calling_ae="CT01")

    assert len(list((tmp_path / "instances").rglob("*.dcm"))) == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SopClassMismatchError("x"), Status.DATASET_DOES_NOT_MATCH_SOP_CLASS),
        (UnparsableInstanceError("x"), Status.CANNOT_UNDERSTAND),
        (SpoolFullError("/spool"), Status.OUT_OF_RESOURCES),
        (RuntimeError("x"), Status.PROCESSING_FAILURE),
    ],
)
def test_errors_become_named_statuses(error: Exception, status: Status) -> None:
    assert status_for(error) is status


CHARSET_FILES = sorted(Path(path).name for path in get_charset_files("chr*.dcm"))


@pytest.mark.parametrize("name", CHARSET_FILES)
def test_read_header_decodes_text_as_pydicom_does(name: str) -> None:
    [path] = get_charset_files(name)
    dataset = dcmread(path, stop_before_pixels=True)
    try:
        header = read_header(Path(path).read_bytes())
    except UnparsableInstanceError:
        pytest.skip("a test file without the identifying UIDs, or contradicting its meta")

    assert header.patient_name == str(dataset.get("PatientName", "")).strip()
    assert header.patient_id == str(dataset.get("PatientID", "")).strip()
    assert header.series_description == str(dataset.get("SeriesDescription", "")).strip()
    assert header.study_date == str(dataset.get("StudyDate", "")).strip()
    assert header.series_number == dataset.get("SeriesNumber")
