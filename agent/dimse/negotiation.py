"""Association negotiation as an acceptor: an A-ASSOCIATE-RQ's bytes in, the answer out.

Contexts, transfer syntaxes and role selection are decided by pynetdicom's PDU codecs and
`negotiate_as_acceptor`, exactly as pynetdicom decides them. That costs about 8 ms of CPU
for a request proposing DCMTK storescu's 120-odd presentation contexts (mostly pydicom's
UID validation), paid by every association before its first slice. The answer depends only on
the request's bytes and this SCP's fixed policy (contexts, allow-list, maximum PDU length),
and a scanner or PACS sends the same request every time, so `Negotiator` keeps the answers
to the last `CACHE_SIZE` distinct requests (keyed by their SHA-256, so a peer sending large
requests cannot make it hold much): a repeated request is answered from memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRequestPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from agent.dimse import wire

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
REJECT_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03
CACHE_SIZE = 64


@dataclass(frozen=True)
class Negotiation:
    """The answer to one A-ASSOCIATE-RQ: the PDU to send back and what was agreed."""

    calling_ae: str
    accepted: bool
    reply: bytes  # the encoded A-ASSOCIATE-AC, or A-ASSOCIATE-RJ
    transfer_syntaxes: Mapping[int, str]  # accepted context id -> transfer syntax (read-only:
    # one answer serves every association that sent the same request)


class Negotiator:
    """Answers A-ASSOCIATE-RQs for one SCP; safe to share between threads."""

    def __init__(
        self, contexts: Sequence[PresentationContext], allowed_peers: frozenset[str], max_pdu: int
    ) -> None:
        self._contexts = list(contexts)
        self._allowed_peers = allowed_peers
        self._max_pdu = max_pdu
        self._answers: OrderedDict[bytes, Negotiation] = OrderedDict()  # by the request's digest
        self._lock = threading.Lock()

    def answer(self, request_body: bytes) -> Negotiation:
        """The answer to the A-ASSOCIATE-RQ whose body (after the PDU header) is given.

        Raises `wire.ProtocolError` when the request cannot be decoded.
        """
        key = hashlib.sha256(request_body).digest()
        with self._lock:
            known = self._answers.get(key)
            if known is not None:
                self._answers.move_to_end(key)
                return known
        answer = self._negotiate(request_body)
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > CACHE_SIZE:
                self._answers.popitem(last=False)
        return answer

    def _negotiate(self, request_body: bytes) -> Negotiation:
        request = decode_request(request_body)
        calling_ae = request.calling_ae_title.strip()
        if self._allowed_peers and calling_ae not in self._allowed_peers:
            return Negotiation(calling_ae, False, rejection(), MappingProxyType({}))
        results, roles = negotiate_as_acceptor(
            request.presentation_context_definition_list,
            self._contexts,
            requested_roles(request) or None,
        )
        agreed = MappingProxyType(
            {
                int(cx.context_id): str(cx.transfer_syntax[0])
                for cx in results
                if cx.result == 0x00 and cx.context_id is not None
            }
        )
        return Negotiation(calling_ae, True, self._acceptance(request, results, roles), agreed)

    def _acceptance(
        self,
        request: A_ASSOCIATE,
        results: list[PresentationContext],
        roles: list[SCP_SCU_RoleSelectionNegotiation],
    ) -> bytes:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = APPLICATION_CONTEXT_NAME
        primitive.calling_ae_title = request.calling_ae_title
        primitive.called_ae_title = request.called_ae_title
        primitive.result = 0x00
        primitive.result_source = SOURCE_SERVICE_USER
        primitive.presentation_context_definition_results_list = results
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = self._max_pdu
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
        primitive.user_information = [maximum, implementation, version, *roles]
        pdu = A_ASSOCIATE_AC()
        pdu.from_primitive(primitive)
        return bytes(pdu.encode())


def decode_request(body: bytes) -> A_ASSOCIATE:
    pdu = AssociateRequestPdu()
    try:
        pdu.decode(bytes((wire.A_ASSOCIATE_RQ, 0)) + len(body).to_bytes(4, "big") + body)
        return pdu.to_primitive()
    except Exception as exc:  # pynetdicom raises assorted errors on malformed items
        raise wire.ProtocolError(f"undecodable A-ASSOCIATE-RQ: {exc}") from exc


def rejection() -> bytes:
    """A-ASSOCIATE-RJ: permanent, by the service user, calling AE title not recognised."""
    primitive = A_ASSOCIATE()
    primitive.result = REJECT_PERMANENT
    primitive.result_source = SOURCE_SERVICE_USER
    primitive.diagnostic = CALLING_AE_NOT_RECOGNISED
    pdu = A_ASSOCIATE_RJ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def requested_roles(request: A_ASSOCIATE) -> dict[UID, tuple[bool | None, bool | None]]:
    return {
        UID(str(item.sop_class_uid)): (item.scu_role, item.scp_role)
        for item in request.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
