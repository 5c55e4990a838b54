"""What the SCP does with a C-STORE: hand it to `Ingestor`, turn the outcome into a status."""

from __future__ import annotations

import logging
import traceback

from agent.dimse.ingest import Ingestor
from agent.dimse.part10 import Part10
from agent.dimse.status import Status, status_for
from agent.errors import AgentError
from agent.received import ReceivedInstance

LOGGER = logging.getLogger(__name__)


class StoreHandler:
    """The acceptor's `store` callback; one instance serves every association of an SCP."""

    def __init__(self, ingestor: Ingestor, *, log_phi: bool = False) -> None:
        self._ingestor = ingestor
        self._log_phi = log_phi

    def __call__(self, part10: Part10, calling_ae: str) -> int:
        """Spool and record the file as received; any failure becomes a failure status."""
        try:
            instance = self._ingestor.ingest(
                part10.raw, calling_ae=calling_ae, sha256=part10.sha256
            )
        except Exception as exc:  # the guard: a failure status, the association lives on
            log_refusal(exc, f"C-STORE from {calling_ae!r}", log_phi=self._log_phi)
            return status_for(exc)
        self._log_stored(instance)
        return Status.SUCCESS

    def _log_stored(self, instance: ReceivedInstance) -> None:
        if self._log_phi:
            LOGGER.debug(
                "stored %s as %s: patient %r %r, modality %s, %d bytes",
                instance.sop_instance_uid,
                instance.spool_path,
                instance.patient_id,
                instance.patient_name,
                instance.modality,
                instance.size_bytes,
            )
        else:
            LOGGER.debug(
                "stored %s: modality %s, %d bytes",
                instance.spool_path,
                instance.modality,
                instance.size_bytes,
            )


def log_refusal(exc: Exception, what: str, *, log_phi: bool) -> None:
    """Log why an instance was not stored (`what`: the request, e.g. "C-STORE from 'CT1'");
    exception messages may carry tag values, so only with PHI logging on."""
    if log_phi:
        LOGGER.error("%s failed", what, exc_info=exc)
        return
    if isinstance(exc, AgentError):
        LOGGER.warning("%s refused: %s", what, type(exc).__name__)
        return
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    LOGGER.error(
        "%s failed: %s at %s:%s (details with PHI logging on)",
        what,
        type(exc).__name__,
        frame.filename,
        frame.lineno,
    )
