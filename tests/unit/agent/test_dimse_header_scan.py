"""The receivers' header walk against pydicom's reader, on every test file both packages ship."""

from __future__ import annotations

import struct
from pathlib import Path

import data_store
import pydicom.data
import pytest
from pydicom.data import get_testdata_file

from agent.dimse.header import (
    InstanceHeader,
    Values,
    header_from,
    read_header,
    read_with_pydicom,
    read_with_walk,
)
from agent.dimse.header_scan import scan
from agent.errors import UnparsableInstanceError

WANTED_TAGS = frozenset({0x00080016, 0x00080018, 0x00100010, 0x00200013})
LAST_TAG = 0x00200013
TEST_FILE_DIRS = (
    Path(pydicom.data.__file__).parent / "test_files",
    Path(pydicom.data.__file__).parent / "charset_files",
    Path(data_store.__file__).parent / "data",
)


def shipped_files() -> list[Path]:
    return [
        path for folder in TEST_FILE_DIRS for path in sorted(folder.rglob("*")) if path.is_file()
    ]


def decoded(raw: bytes, found: tuple[Values, Values] | None) -> InstanceHeader | str:
    """The header from the values found (pydicom's if None), or the name of the error."""
    try:
        return header_from(*(found or read_with_pydicom(raw)))
    except UnparsableInstanceError as exc:
        return type(exc).__name__


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the odd charset test files
def test_the_walk_reads_what_pydicom_reads_wherever_it_takes_a_file() -> None:
    walked = 0
    for path in shipped_files():
        raw = path.read_bytes()
        found = read_with_walk(raw)
        if found is None:
            continue
        walked += 1
        assert decoded(raw, found) == decoded(raw, None), path.name
    assert walked >= 200  # of 262 files: all but big endian, deflate and a few odd ones


def ct_small() -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return Path(path).read_bytes()


def test_the_walk_finds_raw_values_behind_sequences_of_undefined_length() -> None:
    path = get_testdata_file("liver.dcm")  # (0008,1115) and (0008,2112) of undefined length
    assert path is not None
    scanned = scan(Path(path).read_bytes(), WANTED_TAGS, LAST_TAG)

    assert scanned is not None
    assert scanned.elements[0x00080016] == b"1.2.840.10008.5.1.4.1.1.66.4"  # a SEG
    assert set(scanned.elements) == WANTED_TAGS


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MR_small_bigendian.dcm", "big endian"),
        ("image_dfl.dcm", "deflated"),
        ("UN_sequence.dcm", "a UN element of undefined length"),
    ],
)
def test_the_walk_leaves_what_it_does_not_take_on_to_pydicom(name: str, why: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    raw = Path(path).read_bytes()

    assert scan(raw, WANTED_TAGS, LAST_TAG) is None, why


def test_a_file_the_walk_leaves_is_read_by_pydicom() -> None:
    path = get_testdata_file("MR_small_bigendian.dcm")
    assert path is not None

    header = read_header(Path(path).read_bytes())

    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.2"
    assert header.modality == "MR"


def test_the_walk_gives_up_on_truncated_or_foreign_bytes() -> None:
    raw = ct_small()
    meta_end = 132 + 12 + struct.unpack_from("<L", raw, 140)[0]

    assert scan(raw[: meta_end + 30], WANTED_TAGS, LAST_TAG) is None
    assert scan(b"\x00" * 128 + b"NOPE" + raw[132:], WANTED_TAGS, LAST_TAG) is None
    with pytest.raises(UnparsableInstanceError):
        read_header(raw[: meta_end + 30])
