"""Upper Layer framing and command sets, checked against pydicom's and pynetdicom's codecs."""

from __future__ import annotations

import socket
import struct
import threading
from io import BytesIO

import pytest
from pynetdicom.dsutils import decode

from agent.dimse import wire
from tests.conftest import CT_IMAGE_STORAGE
from tests.support.dimse import INSTANCE, store_request


def test_a_store_request_is_parsed() -> None:
    command = wire.parse_command(store_request(41))

    assert command == wire.Command(wire.C_STORE_RQ, 41, CT_IMAGE_STORAGE, INSTANCE, True)


def test_a_command_without_a_data_set_says_so() -> None:
    assert not wire.parse_command(store_request(with_dataset=False)).has_dataset


def test_the_response_decodes_as_a_c_store_rsp() -> None:
    request = wire.parse_command(store_request(41))

    rsp = decode(BytesIO(wire.response(request, 0xA700)), True, True)

    assert rsp.CommandField == wire.C_STORE_RQ | wire.RESPONSE_BIT
    assert rsp.MessageIDBeingRespondedTo == 41
    assert rsp.Status == 0xA700
    assert rsp.CommandDataSetType == wire.NO_DATASET
    assert rsp.AffectedSOPClassUID == CT_IMAGE_STORAGE
    assert rsp.AffectedSOPInstanceUID == INSTANCE
    assert rsp.CommandGroupLength == len(wire.response(request, 0)) - 12


def test_an_echo_response_names_no_instance() -> None:
    echo = wire.Command(wire.C_ECHO_RQ, 3, "1.2.840.10008.1.1", "", False)

    rsp = decode(BytesIO(wire.response(echo, 0)), True, True)

    assert rsp.CommandField == 0x8030
    assert "AffectedSOPInstanceUID" not in rsp


@pytest.mark.parametrize(
    "raw",
    [
        store_request()[:-3],  # cut inside the last value
        b"\x08\x00\x10\x00\x02\x00\x00\x00AB",  # not group 0000
        struct.pack("<HHL", 0, 0x0110, 2) + b"\x01\x00",  # no CommandField
    ],
    ids=["truncated", "other-group", "incomplete"],
)
def test_malformed_command_sets_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_command(raw)


def test_pdvs_split_a_p_data_body_without_copying() -> None:
    first = wire.p_data_tf(1, wire.COMMAND_FRAGMENT | wire.LAST_FRAGMENT, b"cmd!")[6:]
    second = wire.p_data_tf(3, 0, b"data")[6:]
    body = bytearray(first + second)

    items = list(wire.pdvs(body))

    assert [(p.context_id, p.is_command, p.is_last, bytes(p.data)) for p in items] == [
        (1, True, True, b"cmd!"),
        (3, False, False, b"data"),
    ]
    assert items[1].data.obj is body


def test_a_pdv_longer_than_its_pdu_is_a_protocol_error() -> None:
    body = bytearray(struct.pack(">LBB", 100, 1, 3) + b"short")

    with pytest.raises(wire.ProtocolError):
        list(wire.pdvs(body))


def test_read_pdu_reads_whole_pdus_and_notices_a_closed_peer() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(wire.p_data_tf(1, 3, b"x" * 70_000) + wire.RELEASE_RP[:3])
        pdu_type, body = wire.read_pdu(ours, 1 << 20)
        theirs.close()

        assert (pdu_type, len(body)) == (wire.P_DATA_TF, 70_006)
        with pytest.raises(wire.ConnectionClosed):
            wire.read_pdu(ours, 1 << 20)


def test_a_pdu_beyond_the_agreed_maximum_is_refused_before_reading_it() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(struct.pack(">BxL", wire.P_DATA_TF, 10_000))

        with pytest.raises(wire.ProtocolError, match="more than"):
            wire.read_pdu(ours, 4096)


def test_abort_is_an_a_abort_pdu_from_the_provider() -> None:
    assert wire.abort() == bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 2, 2))


def test_a_silent_peer_times_out_and_a_slow_one_does_not() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        wire.set_timeout(ours, 0.2)
        with pytest.raises(TimeoutError):
            wire.read_exact(ours, 10)

        theirs.sendall(b"abc")  # a PDU in pieces: each piece restarts the clock
        threading.Timer(0.15, theirs.sendall, args=(b"defghij",)).start()
        assert wire.read_exact(ours, 10) == b"abcdefghij"
