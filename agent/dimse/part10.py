"""The DICOM file a C-STORE makes: preamble, "DICM", File Meta Information, the data set.

Encoding the group through a pydicom `FileMetaDataset` costs a receiver about as much CPU
as hashing the whole slice; it is encoded here directly instead (PS3.10 7.1: Explicit VR
Little Endian, even lengths, UIDs padded with NUL), with pynetdicom's implementation UID and
version name, which the acceptor also sends in its A-ASSOCIATE-AC.

`Part10Assembler` builds the file from the data set's fragments as they arrive and hashes
each on arrival: the SHA-256 the spool records is then ready when the last fragment is in,
computed while the receiving thread would otherwise wait for the network (hashlib releases
the GIL), not between the last fragment and the acknowledgement.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE = b"\x00" * 128 + b"DICM"
_META_GROUP = 0x0002
_LONG_LENGTH_VRS = frozenset({b"OB"})


@dataclass(frozen=True)
class Part10:
    """A DICOM file's bytes and their SHA-256 hex digest."""

    raw: bytes
    sha256: str


class Part10Assembler:
    """One C-STORE's data set, fragment by fragment, as a DICOM file hashed on the way."""

    def __init__(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str):
        self._head = PREAMBLE + file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid)
        self._digest = hashlib.sha256(self._head)
        self._fragments: list[memoryview] = []

    def add(self, fragment: memoryview) -> None:
        self._fragments.append(fragment)
        self._digest.update(fragment)

    def finish(self) -> Part10:
        """The file, its fragments joined behind the file meta (the slice is copied once)."""
        return Part10(b"".join((self._head, *self._fragments)), self._digest.hexdigest())


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
