"""The DICOM file of a C-STORE: byte for byte what pynetdicom's own encoder makes."""

from __future__ import annotations

import hashlib
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import create_file_meta, encode, encode_file_meta

from agent.dimse.part10 import PREAMBLE, Part10Assembler, file_meta
from tests.conftest import CT_IMAGE_STORAGE, ct_header

EVEN_UID = "1.2.826.0.1.3680043.10.5.12"
ODD_UID = "1.2.826.0.1.3680043.10.5.123"


@pytest.mark.parametrize("sop_instance_uid", [EVEN_UID, ODD_UID])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_file_meta_matches_pynetdicom(sop_instance_uid: str, syntax: str) -> None:
    theirs = create_file_meta(
        sop_class_uid=UID(CT_IMAGE_STORAGE),
        sop_instance_uid=UID(sop_instance_uid),
        transfer_syntax=UID(syntax),
    )

    ours = file_meta(CT_IMAGE_STORAGE, sop_instance_uid, syntax)

    assert ours == encode_file_meta(theirs)


def test_a_part10_file_reads_back_with_its_data_set_from_fragments_and_its_digest() -> None:
    header = ct_header("1.2.3", "1.2.3.4", 7, 7.0)
    data_set = encode(header, False, True)
    assert data_set is not None
    view = memoryview(data_set)

    assembler = Part10Assembler(CT_IMAGE_STORAGE, header.SOPInstanceUID, ExplicitVRLittleEndian)
    for fragment in (view[:100], view[100:101], view[101:]):
        assembler.add(fragment)
    part10 = assembler.finish()

    raw = part10.raw
    assert raw.startswith(PREAMBLE)
    assert part10.sha256 == hashlib.sha256(raw).hexdigest()
    read = dcmread(BytesIO(raw))
    assert read.file_meta.MediaStorageSOPInstanceUID == header.SOPInstanceUID
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert read == header
