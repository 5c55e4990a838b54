"""The storage SCP: an AE that answers C-ECHO and writes every C-STORE to the spool."""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from pydicom import uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from agent.dimse.handlers import ScpHandlers
from agent.dimse.ingest import Ingestor, InstanceRecorder
from agent.spool import Spool

LOGGER = logging.getLogger(__name__)

ACCEPTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
)
"""What the SCP accepts for every storage SOP class; the models can decode all of them."""

DEFAULT_MAX_PDU = 4 * 1024 * 1024
"""The largest PDU peers may send us: large PDUs mean fewer trips through pynetdicom's loop."""

LISTEN_BACKLOG = 64
ACCEPT_DELAY_PER_ASSOCIATION = 0.01
MAX_ACCEPT_DELAYS = 10
_DEBUG_LOGGING_EVENTS = (evt.EVT_PDU_RECV, evt.EVT_PDU_SENT, evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT)


class _ListenerServer(ThreadedAssociationServer):
    """pynetdicom's threaded server on a socket that is already listening.

    The socket may be shared with other receiving processes: all of them accept from it,
    so it is non-blocking (a connection another process took is no error), busier ones
    accept later, and stopping closes only this process's descriptor instead of shutting
    the socket down for all.
    """

    def __init__(self, *args: Any, listener: socket.socket, **kwargs: Any) -> None:
        self._listener = listener
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        cast(socket.socket, self.socket).close()  # the unbound socket socketserver made
        self._listener.setblocking(False)
        self.socket = self._listener
        self.server_address = self._listener.getsockname()

    def server_activate(self) -> None:
        """Already listening."""

    def server_close(self) -> None:
        self._listener.close()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection, after a pause as long as this process is busy: every receiver
        sharing the socket wakes for each connection, and the least busy one takes it."""
        busy = min(self._open_connections(), MAX_ACCEPT_DELAYS)
        if busy:
            time.sleep(busy * ACCEPT_DELAY_PER_ASSOCIATION)
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        """Called when an association ends (and when one fails to start)."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def _open_connections(self) -> int:
        with self._connections_lock:
            self._connections = {c for c in self._connections if c.fileno() != -1}
            return len(self._connections)

    def shutdown(self) -> None:
        """Stop the accept loop and close the descriptor (the AE never listed this server)."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


class ScpServer:
    """A running SCP; `shutdown()` stops listening and lets open associations finish."""

    def __init__(self, ae: AE, server: ThreadedAssociationServer) -> None:
        self._ae = ae
        self._server = server
        self._stopped = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when started with port 0)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, wait up to `timeout` seconds for open associations, abort the rest.

        Calling it again does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        deadline = time.monotonic() + timeout
        for assoc in self._server.active_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
            if assoc.is_alive():
                LOGGER.warning("aborting association from %r at shutdown", assoc.requestor.ae_title)
                assoc.abort()
        LOGGER.info("SCP %r stopped", self._ae.ae_title)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (port 0: a free one), for one or more SCPs."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)


def build_ae(ae_title: str, allowed_peers: Sequence[str], max_pdu: int) -> AE:
    """An AE accepting Verification and every storage SOP class in the accepted syntaxes."""
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.require_calling_aet = list(allowed_peers)
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        abstract_syntax = cast(str, context.abstract_syntax)  # always set in pynetdicom's list
        ae.add_supported_context(abstract_syntax, list(ACCEPTED_TRANSFER_SYNTAXES))
    return ae


def start_scp(
    *,
    ae_title: str,
    address: tuple[str, int] | socket.socket,
    spool: Spool,
    recorder: InstanceRecorder,
    allowed_peers: Sequence[str] = (),
    tls_context: ssl.SSLContext | None = None,
    log_phi: bool = False,
    max_pdu: int = DEFAULT_MAX_PDU,
) -> ScpServer:
    """Serve in background threads on `address`: (host, port) to listen on, or a listening
    socket (shared by several receiving processes). Empty `allowed_peers`: any caller."""
    listener = address if isinstance(address, socket.socket) else listen(*address)
    ae = build_ae(ae_title, allowed_peers, max_pdu)
    handlers = ScpHandlers(Ingestor(spool, recorder), log_phi=log_phi)
    server = ae.make_server(
        listener.getsockname()[:2],
        ssl_context=tls_context,
        evt_handlers=handlers.bindings(),
        server_class=_ListenerServer,
        listener=listener,
    )
    _unbind_debug_logging(server)
    threading.Thread(target=server.serve_forever, name="scp-accept", daemon=True).start()
    scp = ScpServer(ae, server)
    LOGGER.info(
        "SCP %r listening on %s:%d (TLS %s, %s)",
        ae_title,
        *scp.address,
        "on" if tls_context else "off",
        f"{len(allowed_peers)} allowed calling AEs" if allowed_peers else "any calling AE",
    )
    return scp


def _unbind_debug_logging(server: ThreadedAssociationServer) -> None:
    """Drop pynetdicom's per-PDU and per-message logging handlers: they format every PDU
    (CPU on each slice) only to log at DEBUG, which `agent.logs` silences anyway."""
    for event in _DEBUG_LOGGING_EVENTS:
        bound = server.get_handlers(event)  # a list for notification events
        for handler, _ in list(bound) if isinstance(bound, list) else []:
            server.unbind(event, handler)
