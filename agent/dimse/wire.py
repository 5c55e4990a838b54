"""DICOM Upper Layer PDUs and DIMSE command sets as bytes (PS3.8 9.3, PS3.7 E, 9.3).

What the storage acceptor (`agent.dimse.acceptor`) reads and writes once an association is
established: P-DATA-TF framing, A-RELEASE and A-ABORT, and the few command elements of
C-ECHO and C-STORE, in Implicit VR Little Endian as PS3.7 6.3.1 prescribes for command sets.
Association negotiation PDUs are pynetdicom's (`pynetdicom.pdu`).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

COMMAND_FRAGMENT = 0x01
LAST_FRAGMENT = 0x02

C_STORE_RQ = 0x0001
C_ECHO_RQ = 0x0030
RESPONSE_BIT = 0x8000
NO_DATASET = 0x0101

ABORT_SERVICE_PROVIDER = 0x02
ABORT_UNEXPECTED_PDU = 0x02
ABORT_UNRECOGNISED_PDU_PARAMETER = 0x06

_PDU_HEADER = struct.Struct(">BxL")
_PDV_HEADER = struct.Struct(">LBB")
_ELEMENT_HEADER = struct.Struct("<HHL")

RELEASE_RP = _PDU_HEADER.pack(A_RELEASE_RP, 4) + b"\x00" * 4


class ConnectionClosed(Exception):
    """The peer closed the connection in the middle of a PDU or between two."""


class ProtocolError(Exception):
    """The peer sent something the Upper Layer or DIMSE protocol does not allow."""


@dataclass(frozen=True)
class Pdv:
    """One presentation data value item of a P-DATA-TF PDU."""

    context_id: int
    is_command: bool
    is_last: bool
    data: memoryview


@dataclass(frozen=True)
class Command:
    """The command set elements a C-ECHO or C-STORE request carries."""

    field: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    has_dataset: bool


def read_pdu(connection: socket.socket | ssl.SSLSocket, max_length: int) -> tuple[int, bytearray]:
    """The next PDU's type and its body (everything after the 6-byte header)."""
    pdu_type, length = _PDU_HEADER.unpack(read_exact(connection, _PDU_HEADER.size))
    if length > max_length + 6:  # a P-DATA-TF may carry max_length of PDVs plus their headers
        raise ProtocolError(f"a PDU of {length} bytes, more than the {max_length} agreed")
    return pdu_type, read_exact(connection, length)


def set_timeout(connection: socket.socket | ssl.SSLSocket, seconds: float) -> None:
    """Fail a read or write that makes no progress for `seconds`.

    A plain TCP socket stays blocking and gets the timeout from the kernel (SO_RCVTIMEO,
    SO_SNDTIMEO), so `read_exact` can ask for a whole PDU in one `recv` (MSG_WAITALL)
    instead of waking up for every segment; Python's own timeout would poll before each.
    """
    if isinstance(connection, ssl.SSLSocket):
        connection.settimeout(seconds)
        return
    connection.settimeout(None)
    whole, fraction = divmod(seconds, 1.0)
    value = struct.pack("ll", int(whole), int(fraction * 1_000_000))
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def read_exact(connection: socket.socket | ssl.SSLSocket, size: int) -> bytearray:
    """Exactly `size` bytes, read straight into one buffer.

    Raises `TimeoutError` when nothing arrives for the connection's timeout (`set_timeout`)
    and `ConnectionClosed` when the peer closes first.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    wait_all = not isinstance(connection, ssl.SSLSocket) and connection.gettimeout() is None
    flags = socket.MSG_WAITALL if wait_all else 0
    while received < size:
        try:
            count = connection.recv_into(view[received:], size - received, flags)
        except BlockingIOError as exc:  # SO_RCVTIMEO ran out with nothing received
            raise TimeoutError(f"nothing received for {size - received} bytes") from exc
        if count == 0:
            raise ConnectionClosed(f"connection closed {received} bytes into {size}")
        received += count
    return buffer


def pdvs(body: bytearray) -> Iterator[Pdv]:
    """The PDV items of a P-DATA-TF body; their data are views into `body`, not copies."""
    view = memoryview(body)
    offset = 0
    while offset < len(body):
        if offset + _PDV_HEADER.size > len(body):
            raise ProtocolError("a P-DATA-TF PDU ends inside a PDV item header")
        length, context_id, control = _PDV_HEADER.unpack_from(body, offset)
        end = offset + 4 + length
        if length < 2 or end > len(body):
            raise ProtocolError(f"a PDV item of length {length} does not fit its PDU")
        yield Pdv(
            context_id,
            bool(control & COMMAND_FRAGMENT),
            bool(control & LAST_FRAGMENT),
            view[offset + _PDV_HEADER.size : end],
        )
        offset = end


def p_data_tf(context_id: int, control: int, data: bytes) -> bytes:
    """A P-DATA-TF PDU with one PDV item."""
    pdv = _PDV_HEADER.pack(len(data) + 2, context_id, control) + data
    return _PDU_HEADER.pack(P_DATA_TF, len(pdv)) + pdv


def abort(reason: int = ABORT_UNEXPECTED_PDU) -> bytes:
    """An A-ABORT PDU from the service provider (this node) with `reason`."""
    return _PDU_HEADER.pack(A_ABORT, 4) + bytes((0, 0, ABORT_SERVICE_PROVIDER, reason))


def parse_command(raw: bytes) -> Command:
    """Decode an Implicit VR Little Endian command set; raises `ProtocolError` if it is not one."""
    elements: dict[int, bytes] = {}
    offset = 0
    while offset < len(raw):
        if offset + _ELEMENT_HEADER.size > len(raw):
            raise ProtocolError("a command set ends inside an element header")
        group, element, length = _ELEMENT_HEADER.unpack_from(raw, offset)
        offset += _ELEMENT_HEADER.size
        if group != 0x0000 or offset + length > len(raw):
            raise ProtocolError(f"command element ({group:04X},{element:04X}) is malformed")
        elements[element] = raw[offset : offset + length]
        offset += length
    try:
        return Command(
            field=_unsigned_short(elements[0x0100]),
            message_id=_unsigned_short(elements[0x0110]),
            sop_class_uid=_uid(elements.get(0x0002, b"")),
            sop_instance_uid=_uid(elements.get(0x1000, b"")),
            has_dataset=_unsigned_short(elements[0x0800]) != NO_DATASET,
        )
    except (KeyError, struct.error) as exc:
        raise ProtocolError(f"a command set without a usable {exc}") from exc


def response(request: Command, status: int) -> bytes:
    """The response command set to `request`, with `status`, and no data set."""
    elements = [(0x0002, _uid_value(request.sop_class_uid))] if request.sop_class_uid else []
    elements += [
        (0x0100, struct.pack("<H", request.field | RESPONSE_BIT)),
        (0x0120, struct.pack("<H", request.message_id)),
        (0x0800, struct.pack("<H", NO_DATASET)),
        (0x0900, struct.pack("<H", status)),
    ]
    if request.sop_instance_uid:
        elements.append((0x1000, _uid_value(request.sop_instance_uid)))
    body = b"".join(_ELEMENT_HEADER.pack(0, tag, len(value)) + value for tag, value in elements)
    return _ELEMENT_HEADER.pack(0, 0x0000, 4) + struct.pack("<L", len(body)) + body


def _unsigned_short(value: bytes) -> int:
    number: int = struct.unpack("<H", value)[0]
    return number


def _uid(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", errors="replace")


def _uid_value(uid: str) -> bytes:
    encoded = uid.encode("ascii")
    return encoded + b"\x00" if len(encoded) % 2 else encoded
