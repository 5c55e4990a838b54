"""One accepted association, from A-ASSOCIATE-RQ to release: negotiation, C-ECHO, C-STORE.

pynetdicom's own acceptor runs every message through two polling threads, an event queue,
its state machine and pydicom-encoded command sets: about 3 ms of CPU per C-STORE, which
on two cores caps a node near 300 slices a second whatever it does with them
(`bench/ingest.py` times a bare pynetdicom SCP for reference). Here one thread per
association reads each PDU straight into one buffer and answers on the same thread.
Negotiation is `agent.dimse.negotiation`'s: pynetdicom's decisions, remembered per request.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.dimse import wire
from agent.dimse.negotiation import Negotiator
from agent.dimse.part10 import Part10, Part10Assembler
from agent.dimse.status import Status

LOGGER = logging.getLogger(__name__)

UNRECOGNISED_OPERATION = 0x0211
MAX_ASSOCIATE_RQ_BYTES = 1 << 20

Connection = socket.socket | ssl.SSLSocket
StoreCallback = Callable[[Part10, str], int]


@dataclass(frozen=True)
class AcceptorPolicy:
    """What every association of one SCP shares."""

    negotiator: Negotiator
    store: StoreCallback
    max_pdu: int
    network_timeout: float


@dataclass
class _Message:
    """A DIMSE message being assembled from PDV fragments."""

    command: bytearray = field(default_factory=bytearray)
    parsed: wire.Command | None = None
    dataset: Part10Assembler | None = None


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
        self._transfer_syntaxes: Mapping[int, str] = {}
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
        negotiation = self._policy.negotiator.answer(bytes(body))
        self._calling_ae = negotiation.calling_ae
        self._connection.sendall(negotiation.reply)
        if not negotiation.accepted:
            LOGGER.warning("association rejected from %s: calling AE not allowed", self._who())
            return False
        self._transfer_syntaxes = negotiation.transfer_syntaxes
        LOGGER.info(
            "association accepted from %s, %d presentation contexts",
            self._who(),
            len(self._transfer_syntaxes),
        )
        return True

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
        if message.dataset is None:
            message.dataset = Part10Assembler(
                message.parsed.sop_class_uid,
                message.parsed.sop_instance_uid,
                self._transfer_syntaxes[pdv.context_id],
            )
        message.dataset.add(pdv.data)
        return pdv.is_last

    def _answer(self, message: _Message, context_id: int) -> None:
        command = message.parsed
        assert command is not None
        if command.field == wire.C_ECHO_RQ:
            status = int(Status.SUCCESS)
        elif command.field == wire.C_STORE_RQ and message.dataset is not None:
            status = self._store(message.dataset.finish())
        else:
            status = UNRECOGNISED_OPERATION
        rsp = wire.response(command, status)
        control = wire.COMMAND_FRAGMENT | wire.LAST_FRAGMENT
        self._connection.sendall(wire.p_data_tf(context_id, control, rsp))

    def _store(self, part10: Part10) -> int:
        status = self._policy.store(part10, self._calling_ae)
        if status == Status.SUCCESS:
            self._tally.stored += 1
        else:
            self._tally.failed += 1
        return status

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._connection.sendall(data)
