"""pynetdicom event handlers: thin adapters from DIMSE events to `Ingestor` and the logs."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType

from agent.dimse.ingest import Ingestor
from agent.dimse.part10 import part10_file
from agent.dimse.status import Status, status_for
from agent.errors import AgentError
from agent.received import ReceivedInstance

LOGGER = logging.getLogger(__name__)


@dataclass
class _Tally:
    """What happened on one accepted association, for its closing log line."""

    calling_ae: str
    address: str
    started: float = field(default_factory=time.monotonic)
    stored: int = 0
    failed: int = 0


class ScpHandlers:
    """The SCP's event handlers; one instance serves every association of a server."""

    def __init__(self, ingestor: Ingestor, *, log_phi: bool = False) -> None:
        self._ingestor = ingestor
        self._log_phi = log_phi
        self._tallies: weakref.WeakKeyDictionary[Association, _Tally] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def bindings(self) -> list[EventHandlerType]:
        """The `evt_handlers` list for `AE.start_server`."""
        return [
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_CONN_CLOSE, self.on_closed),
        ]

    def on_echo(self, event: Event) -> int:
        return Status.SUCCESS

    def on_store(self, event: Event) -> int:
        """Spool and record the dataset as received; any failure becomes a failure status."""
        calling_ae = event.assoc.requestor.ae_title
        try:
            instance = self._ingestor.ingest(_received_file(event), calling_ae=calling_ae)
        except Exception as exc:  # the guard: a failure status, the association lives on
            self._log_failure(exc, calling_ae)
            self._count(event.assoc, stored=False)
            return status_for(exc)
        self._count(event.assoc, stored=True)
        self._log_stored(instance)
        return Status.SUCCESS

    def on_accepted(self, event: Event) -> None:
        requestor = event.assoc.requestor
        tally = _Tally(requestor.ae_title, f"{requestor.address}:{requestor.port}")
        with self._lock:
            self._tallies[event.assoc] = tally
        LOGGER.info(
            "association accepted from %r at %s, %d presentation contexts",
            tally.calling_ae,
            tally.address,
            len(event.assoc.accepted_contexts),
        )

    def on_rejected(self, event: Event) -> None:
        requestor = event.assoc.requestor
        LOGGER.warning(
            "association rejected from %r at %s:%s",
            requestor.ae_title,
            requestor.address,
            requestor.port,
        )

    def on_closed(self, event: Event) -> None:
        with self._lock:
            tally = self._tallies.pop(event.assoc, None)
        if tally is None:  # rejected or never negotiated: already logged or nothing to say
            return
        LOGGER.info(
            "association from %r at %s closed: %d stored, %d failed, %.2f s",
            tally.calling_ae,
            tally.address,
            tally.stored,
            tally.failed,
            time.monotonic() - tally.started,
        )

    def _count(self, assoc: Association, *, stored: bool) -> None:
        with self._lock:
            tally = self._tallies.get(assoc)
            if tally is None:
                return
            if stored:
                tally.stored += 1
            else:
                tally.failed += 1

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

    def _log_failure(self, exc: Exception, calling_ae: str) -> None:
        """Log a failed C-STORE; exception messages may carry tag values, so only with PHI on."""
        if self._log_phi:
            LOGGER.error("C-STORE from %r failed", calling_ae, exc_info=exc)
            return
        if isinstance(exc, AgentError):
            LOGGER.warning("C-STORE from %r refused: %s", calling_ae, type(exc).__name__)
            return
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        LOGGER.error(
            "C-STORE from %r failed: %s at %s:%s (details with PHI logging on)",
            calling_ae,
            type(exc).__name__,
            frame.filename,
            frame.lineno,
        )


def _received_file(event: Event) -> bytes:
    """The C-STORE's data set as a DICOM file, as `event.encoded_dataset()` makes it."""
    request = cast(C_STORE, event.request)
    return part10_file(
        event.encoded_dataset(include_meta=False),
        sop_class_uid=str(request.AffectedSOPClassUID),
        sop_instance_uid=str(request.AffectedSOPInstanceUID),
        transfer_syntax_uid=str(event.context.transfer_syntax),
    )
