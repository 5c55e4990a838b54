"""The storage SCP: answers C-ECHO and writes every C-STORE to the spool.

An accept thread takes connections from a listening socket that other receiving processes
may share (it is non-blocking: a connection another process took is no error; a busier
process accepts later, so the least busy takes each one) and serves each association on a
thread of its own (`agent.dimse.acceptor`). Stopping closes only this process's descriptor.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from pydicom import uid
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from agent.dimse.acceptor import AcceptorPolicy, Association
from agent.dimse.handlers import StoreHandler
from agent.dimse.ingest import Ingestor, InstanceRecorder
from agent.dimse.negotiation import Negotiator
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
"""The largest PDU peers may send us: fewer, larger reads per slice."""
NETWORK_TIMEOUT_SECONDS = 60.0
"""A peer silent this long in the middle of an association is aborted."""

LISTEN_BACKLOG = 64
ACCEPT_POLL_SECONDS = 0.2
ACCEPT_DELAY_PER_ASSOCIATION = 0.01
MAX_ACCEPT_DELAYS = 10


def supported_contexts() -> list[PresentationContext]:
    """Verification, and every storage SOP class in the accepted transfer syntaxes."""
    contexts = [build_context(Verification)]
    for context in AllStoragePresentationContexts:
        abstract_syntax = str(context.abstract_syntax)  # always set in pynetdicom's list
        contexts.append(build_context(abstract_syntax, list(ACCEPTED_TRANSFER_SYNTAXES)))
    return contexts


class ScpServer:
    """A running SCP; `shutdown()` stops accepting and lets open associations finish."""

    def __init__(
        self,
        ae_title: str,
        listener: socket.socket,
        policy: AcceptorPolicy,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self._ae_title = ae_title
        self._listener = listener
        self._policy = policy
        self._tls_context = tls_context
        self._address = listener.getsockname()[:2]
        self._open: dict[Association, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._accepting = threading.Thread(target=self._accept_loop, name="scp-accept")
        self._accepting.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when started with port 0)."""
        host, port = self._address
        return str(host), int(port)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, wait up to `timeout` seconds for open associations, abort the rest.

        Calling it again does nothing.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._accepting.join()
        self._listener.close()
        deadline = time.monotonic() + timeout
        with self._lock:
            still_open = list(self._open.items())
        for association, thread in still_open:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                LOGGER.warning("aborting an association at shutdown")
                association.abort()
                thread.join(5.0)
        LOGGER.info("SCP %r stopped", self._ae_title)

    def _accept_loop(self) -> None:
        self._listener.setblocking(False)
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], ACCEPT_POLL_SECONDS)
            if not readable:
                continue
            busy = min(self._open_count(), MAX_ACCEPT_DELAYS)
            if busy:  # every receiver sharing the socket wakes; the least busy takes it
                time.sleep(busy * ACCEPT_DELAY_PER_ASSOCIATION)
            try:
                connection, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another receiver took it
            except OSError as exc:
                LOGGER.error("accepting a connection failed: %s", exc)
                continue
            connection.setblocking(True)
            thread = threading.Thread(
                target=self._serve, args=(connection, address), name="scp-association"
            )
            thread.start()

    def _serve(self, connection: socket.socket, address: tuple[str, int]) -> None:
        where = f"{address[0]}:{address[1]}"
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            peer = self._secure(connection)
        except (ssl.SSLError, OSError) as exc:
            LOGGER.warning("TLS handshake with %s failed: %s", where, exc)
            connection.close()
            return
        association = Association(peer, where, self._policy)
        with self._lock:
            self._open[association] = threading.current_thread()
        try:
            association.serve()
        finally:
            with self._lock:
                del self._open[association]

    def _secure(self, connection: socket.socket) -> socket.socket | ssl.SSLSocket:
        if self._tls_context is None:
            return connection
        connection.settimeout(self._policy.network_timeout)
        return self._tls_context.wrap_socket(connection, server_side=True)

    def _open_count(self) -> int:
        with self._lock:
            return len(self._open)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (port 0: a free one), for one or more SCPs."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)


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
    network_timeout: float = NETWORK_TIMEOUT_SECONDS,
) -> ScpServer:
    """Serve in background threads on `address`: (host, port) to listen on, or a listening
    socket (shared by several receiving processes). Empty `allowed_peers`: any caller."""
    listener = address if isinstance(address, socket.socket) else listen(*address)
    policy = AcceptorPolicy(
        negotiator=Negotiator(
            supported_contexts(), frozenset(peer.strip() for peer in allowed_peers), max_pdu
        ),
        store=StoreHandler(Ingestor(spool, recorder), log_phi=log_phi),
        max_pdu=max_pdu,
        network_timeout=network_timeout,
    )
    scp = ScpServer(ae_title, listener, policy, tls_context)
    LOGGER.info(
        "SCP %r listening on %s:%d (TLS %s, %s)",
        ae_title,
        *scp.address,
        "on" if tls_context else "off",
        f"{len(allowed_peers)} allowed calling AEs" if allowed_peers else "any calling AE",
    )
    return scp
