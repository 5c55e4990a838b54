"""The storage SCP: an AE that answers C-ECHO and writes every C-STORE to the spool."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Sequence
from typing import cast

from pydicom import uid
from pynetdicom import AE, AllStoragePresentationContexts
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
    host: str,
    port: int,
    spool: Spool,
    recorder: InstanceRecorder,
    allowed_peers: Sequence[str] = (),
    tls_context: ssl.SSLContext | None = None,
    log_phi: bool = False,
    max_pdu: int = DEFAULT_MAX_PDU,
) -> ScpServer:
    """Start listening in background threads; an empty `allowed_peers` accepts any caller."""
    ae = build_ae(ae_title, allowed_peers, max_pdu)
    handlers = ScpHandlers(Ingestor(spool, recorder), log_phi=log_phi)
    server = ae.start_server(
        (host, port), block=False, ssl_context=tls_context, evt_handlers=handlers.bindings()
    )
    assert server is not None  # block=False always returns the server
    scp = ScpServer(ae, server)
    LOGGER.info(
        "SCP %r listening on %s:%d (TLS %s, %s)",
        ae_title,
        *scp.address,
        "on" if tls_context else "off",
        f"{len(allowed_peers)} allowed calling AEs" if allowed_peers else "any calling AE",
    )
    return scp
