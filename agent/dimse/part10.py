"""The DICOM file a C-STORE makes: preamble, "DICM", File Meta Information, the data set.

Encoding the group through a pydicom `FileMetaDataset` costs a receiver about as much CPU
as hashing the whole slice; it is encoded here directly instead (PS3.10 7.1: Explicit VR
Little Endian, even lengths, UIDs padded with NUL), with pynetdicom's implementation UID and
version name, which the acceptor also sends in its A-ASSOCIATE-AC.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE = b"\x00" * 128 + b"DICM"
_META_GROUP = 0x0002
_LONG_LENGTH_VRS = frozenset({b"OB"})


def part10_file(
    dataset: Sequence[bytes | memoryview],
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
) -> bytes:
    """The data set's fragments (encoded in `transfer_syntax_uid`) as the bytes of a DICOM file.

    The fragments are joined here, behind the file meta, so a slice is copied once.
    """
    meta = file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid)
    return b"".join((PREAMBLE, meta, *dataset))


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """The File Meta Information group, its group length first."""
    elements = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _uid(sop_class_uid)),
            _element(0x0003, b"UI", _uid(sop_instance_uid)),
            _element(0x0010, b"UI", _uid(transfer_syntax_uid)),
            _element(0x0012, b"UI", _uid(PYNETDICOM_IMPLEMENTATION_UID)),
            _element(0x0013, b"SH", _text(PYNETDICOM_IMPLEMENTATION_VERSION)),
        )
    )
    return _element(0x0000, b"UL", struct.pack("<I", len(elements))) + elements


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr in _LONG_LENGTH_VRS:
        return struct.pack("<HH2s2xI", _META_GROUP, element, vr, len(value)) + value
    return struct.pack("<HH2sH", _META_GROUP, element, vr, len(value)) + value


def _uid(uid: str) -> bytes:
    encoded = uid.encode("ascii")
    return encoded + b"\x00" if len(encoded) % 2 else encoded


def _text(text: str) -> bytes:
    encoded = text.encode("ascii")
    return encoded + b" " if len(encoded) % 2 else encoded
