"""One accepted association, from A-ASSOCIATE-RQ to release: negotiation, C-ECHO, C-STORE.

pynetdicom's own acceptor runs every message through two polling threads, an event queue,
its state machine and pydicom-encoded command sets: about 3 ms of CPU per C-STORE, which
on two cores caps a node near 300 slices a second whatever it does with them
(`bench/ingest.py` times a bare pynetdicom SCP for reference). Here one thread per
association reads each PDU straight into one buffer and answers on the same thread.
Negotiation uses pynetdicom's PDU codecs and `negotiate_as_acceptor`, so contexts, transfer
syntaxes and role selection are decided exactly as pynetdicom decides them.

A peer that breaks the protocol gets an A-ABORT; one that goes silent for `network_timeout`
seconds too. What to do with a C-STORE is the `store` callback's business: it gets the
instance as a DICOM file and the calling AE title and returns the DIMSE status.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from agent.dimse.part10 import part10_file
from agent.dimse.status import Status

LOGGER = logging.getLogger(__name__)

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
REJECT_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03
UNRECOGNISED_OPERATION = 0x0211
MAX_ASSOCIATE_RQ_BYTES = 1 << 20

Connection = socket.socket | ssl.SSLSocket
StoreCallback = Callable[[bytes, str], int]


@dataclass(frozen=True)
class AcceptorPolicy:
    """What every association of one SCP shares."""

    contexts: Sequence[PresentationContext]
    allowed_peers: frozenset[str]
    store: StoreCallback
    max_pdu: int
    network_timeout: float


@dataclass
class _Message:
    """A DIMSE message being assembled from PDV fragments."""

    command: bytearray = field(default_factory=bytearray)
    parsed: wire.Command | None = None
    dataset: list[memoryview] = field(default_factory=list)


@dataclass
class _Tally:
    stored: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)


class Association:
    """Serve one connection until the peer releases or aborts it, or it fails."""

    def __init__(self, connection: Connection, address: str, policy: AcceptorPolicy) -> None:
        self._connection = connection
        self._address = address
        self._policy = policy
        self._calling_ae = ""
        self._transfer_syntaxes: dict[int, str] = {}
        self._tally = _Tally()

    def serve(self) -> None:
        wire.set_timeout(self._connection, self._policy.network_timeout)
        try:
            if self._negotiate():
                self._serve_messages()
        except (wire.ProtocolError, TimeoutError) as exc:
            LOGGER.warning("aborting association from %s: %s", self._who(), exc)
            self._send_quietly(wire.abort())
        except (wire.ConnectionClosed, OSError) as exc:
            if self._calling_ae:
                LOGGER.warning("association from %s lost: %s", self._who(), exc)
            else:  # a port probe, or a peer that gave up before asking
                LOGGER.info("connection from %s closed before an association", self._who())
        finally:
            self._connection.close()
        if self._transfer_syntaxes:
            LOGGER.info(
                "association from %s closed: %d stored, %d failed, %.2f s",
                self._who(),
                self._tally.stored,
                self._tally.failed,
                time.monotonic() - self._tally.started,
            )

    def abort(self) -> None:
        """Abort from another thread (node shutdown); the serving thread then ends."""
        self._send_quietly(wire.abort())
        with contextlib.suppress(OSError):
            self._connection.shutdown(socket.SHUT_RDWR)

    def _who(self) -> str:
        return f"{self._calling_ae!r} at {self._address}" if self._calling_ae else self._address

    def _negotiate(self) -> bool:
        pdu_type, body = wire.read_pdu(self._connection, MAX_ASSOCIATE_RQ_BYTES)
        if pdu_type != wire.A_ASSOCIATE_RQ:
            raise wire.ProtocolError(f"PDU type 0x{pdu_type:02X} before A-ASSOCIATE-RQ")
        pdu = AssociateRequestPdu()
        try:
            pdu.decode(bytes((pdu_type, 0)) + len(body).to_bytes(4, "big") + body)
            request = pdu.to_primitive()
        except Exception as exc:  # pynetdicom raises assorted errors on malformed items
            raise wire.ProtocolError(f"undecodable A-ASSOCIATE-RQ: {exc}") from exc
        self._calling_ae = request.calling_ae_title.strip()
        allowed = self._policy.allowed_peers
        if allowed and self._calling_ae not in allowed:
            self._reject()
            return False
        results, roles = negotiate_as_acceptor(
            request.presentation_context_definition_list,
            list(self._policy.contexts),
            _requested_roles(request) or None,
        )
        self._transfer_syntaxes = {
            int(cx.context_id): str(cx.transfer_syntax[0])
            for cx in results
            if cx.result == 0x00 and cx.context_id is not None
        }
        LOGGER.info(
            "association accepted from %s, %d presentation contexts",
            self._who(),
            len(self._transfer_syntaxes),
        )
        self._connection.sendall(self._accept_pdu(request, results, roles))
        return True

    def _reject(self) -> None:
        primitive = A_ASSOCIATE()
        primitive.result = REJECT_PERMANENT
        primitive.result_source = SOURCE_SERVICE_USER
        primitive.diagnostic = CALLING_AE_NOT_RECOGNISED
        pdu = A_ASSOCIATE_RJ()
        pdu.from_primitive(primitive)
        LOGGER.warning("association rejected from %s: calling AE not allowed", self._who())
        self._connection.sendall(pdu.encode())

    def _accept_pdu(
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
        maximum.maximum_length_received = self._policy.max_pdu
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
        primitive.user_information = [maximum, implementation, version, *roles]
        pdu = A_ASSOCIATE_AC()
        pdu.from_primitive(primitive)
        return pdu.encode()

    def _serve_messages(self) -> None:
        message = _Message()
        while True:
            pdu_type, body = wire.read_pdu(self._connection, self._policy.max_pdu)
            if pdu_type == wire.A_RELEASE_RQ:
                self._connection.sendall(wire.RELEASE_RP)
                return
            if pdu_type == wire.A_ABORT:
                LOGGER.warning("association from %s aborted by the peer", self._who())
                return
            if pdu_type != wire.P_DATA_TF:
                raise wire.ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}")
            for pdv in wire.pdvs(body):
                if self._add_fragment(message, pdv):
                    self._answer(message, pdv.context_id)
                    message = _Message()

    def _add_fragment(self, message: _Message, pdv: wire.Pdv) -> bool:
        """Add a PDV to the message; True once the message is complete."""
        if pdv.context_id not in self._transfer_syntaxes:
            raise wire.ProtocolError(f"presentation context {pdv.context_id} was not accepted")
        if pdv.is_command:
            if message.parsed is not None:
                raise wire.ProtocolError("a command fragment after the command set ended")
            message.command += pdv.data
            if not pdv.is_last:
                return False
            message.parsed = wire.parse_command(bytes(message.command))
            return not message.parsed.has_dataset
        if message.parsed is None:
            raise wire.ProtocolError("a data set fragment before its command set")
        message.dataset.append(pdv.data)
        return pdv.is_last

    def _answer(self, message: _Message, context_id: int) -> None:
        command = message.parsed
        assert command is not None
        if command.field == wire.C_ECHO_RQ:
            status = int(Status.SUCCESS)
        elif command.field == wire.C_STORE_RQ and message.dataset:
            status = self._store(command, context_id, message.dataset)
        else:
            status = UNRECOGNISED_OPERATION
        rsp = wire.response(command, status)
        control = wire.COMMAND_FRAGMENT | wire.LAST_FRAGMENT
        self._connection.sendall(wire.p_data_tf(context_id, control, rsp))

    def _store(self, command: wire.Command, context_id: int, dataset: list[memoryview]) -> int:
        raw = part10_file(
            dataset,
            sop_class_uid=command.sop_class_uid,
            sop_instance_uid=command.sop_instance_uid,
            transfer_syntax_uid=self._transfer_syntaxes[context_id],
        )
        status = self._policy.store(raw, self._calling_ae)
        if status == Status.SUCCESS:
            self._tally.stored += 1
        else:
            self._tally.failed += 1
        return status

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._connection.sendall(data)


def _requested_roles(request: A_ASSOCIATE) -> dict[UID, tuple[bool | None, bool | None]]:
    return {
        UID(str(item.sop_class_uid)): (item.scu_role, item.scp_role)
        for item in request.user_information
        if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
    }
