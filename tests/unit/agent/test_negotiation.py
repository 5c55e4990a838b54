"""Negotiation as an acceptor: pynetdicom's decisions, each distinct request answered once."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ

from agent.dimse import wire
from agent.dimse.negotiation import (
    CACHE_SIZE,
    CALLING_AE_NOT_RECOGNISED,
    Negotiator,
)
from agent.dimse.scp import supported_contexts
from tests.support.dimse import associate_request

MAX_PDU = 1 << 20


def request_body(calling_ae: str, *syntaxes: str) -> bytes:
    return associate_request(calling_ae, *syntaxes)[6:]  # after type, reserved byte, length


def negotiator(*allowed: str) -> Negotiator:
    return Negotiator(supported_contexts(), frozenset(allowed), MAX_PDU)


def test_accepts_a_storage_context_in_our_first_syntax_the_caller_proposes() -> None:
    answer = negotiator().answer(request_body("CT01", JPEG2000Lossless, ExplicitVRLittleEndian))

    assert answer.accepted
    assert answer.calling_ae == "CT01"
    assert answer.transfer_syntaxes == {1: ExplicitVRLittleEndian}  # 3: not a storage class
    reply = A_ASSOCIATE_AC()
    reply.decode(answer.reply)
    primitive = reply.to_primitive()
    assert primitive.maximum_length_received == MAX_PDU
    assert [
        (cx.context_id, cx.result) for cx in primitive.presentation_context_definition_results_list
    ] == [
        (1, 0x00),
        (3, 0x03),
    ]


def test_a_repeated_request_is_answered_from_memory_and_others_are_not() -> None:
    answers = negotiator()

    first = answers.answer(request_body("CT01", ExplicitVRLittleEndian))
    again = answers.answer(request_body("CT01", ExplicitVRLittleEndian))
    other = answers.answer(request_body("CT02", JPEG2000Lossless))

    assert again is first
    assert (other.calling_ae, other.transfer_syntaxes) == ("CT02", {1: JPEG2000Lossless})
    assert other.reply != first.reply


def test_only_the_latest_distinct_requests_are_kept() -> None:
    answers = negotiator()
    oldest = answers.answer(request_body("AE0", ExplicitVRLittleEndian))
    for number in range(1, CACHE_SIZE + 1):
        answers.answer(request_body(f"AE{number}", ExplicitVRLittleEndian))

    assert answers.answer(request_body("AE0", ExplicitVRLittleEndian)) is not oldest


def test_a_caller_off_the_allow_list_is_rejected() -> None:
    answer = negotiator("PACS").answer(request_body("INTRUDER", ExplicitVRLittleEndian))

    assert not answer.accepted
    assert answer.transfer_syntaxes == {}
    reply = A_ASSOCIATE_RJ()
    reply.decode(answer.reply)
    assert reply.reason_diagnostic == CALLING_AE_NOT_RECOGNISED


def test_an_undecodable_request_is_a_protocol_error() -> None:
    with pytest.raises(wire.ProtocolError, match="undecodable"):
        negotiator().answer(b"\x00\x01" + b"\xff" * 80)
