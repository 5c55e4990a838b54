"""A small DIMSE SCU: C-ECHO a peer, C-STORE files to it (used by exports and `echo`)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from agent.dimse.status import Status
from agent.errors import AssociationRejectedError, PeerUnreachableError

LOGGER = logging.getLogger(__name__)

DEFAULT_CALLING_AE = "DICOM_AGENT"
MAX_PRESENTATION_CONTEXTS = 128


@dataclass(frozen=True)
class SendResult:
    """The outcome of one file: the peer's status, or None with `detail` when none came back."""

    path: Path
    status: int | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Stored by the peer (success, or a warning such as coercion of data elements)."""
        return self.status is not None and code_to_category(self.status) in (
            STATUS_SUCCESS,
            STATUS_WARNING,
        )


def echo(
    ae_title: str,
    host: str,
    port: int,
    calling_ae: str = DEFAULT_CALLING_AE,
    *,
    tls_context: ssl.SSLContext | None = None,
) -> bool:
    """C-ECHO the peer; True when it answered success.

    Raises `PeerUnreachableError` or `AssociationRejectedError` when no association opens.
    """
    contexts = [build_context(Verification)]
    with _association(ae_title, host, port, calling_ae, contexts, tls_context) as assoc:
        response = assoc.send_c_echo()
    return bool(response.get("Status") == Status.SUCCESS)


def send_files(
    paths: Sequence[Path],
    ae_title: str,
    host: str,
    port: int,
    calling_ae: str = DEFAULT_CALLING_AE,
    *,
    tls_context: ssl.SSLContext | None = None,
) -> list[SendResult]:
    """C-STORE each DICOM Part 10 file over one association; one result per path, in order.

    Each file is proposed in its own SOP class and transfer syntax. Raises
    `PeerUnreachableError` or `AssociationRejectedError` when no association opens.
    """
    syntaxes: dict[Path, tuple[str, str]] = {}
    unreadable: dict[Path, SendResult] = {}
    for path in paths:
        try:
            syntaxes[path] = _sop_class_and_syntax(path)
        except (OSError, InvalidDicomError, AttributeError) as exc:
            unreadable[path] = SendResult(path, None, f"not a readable DICOM file: {exc}")
    pairs = sorted(set(syntaxes.values()))
    if len(pairs) > MAX_PRESENTATION_CONTEXTS:
        raise ValueError(f"{len(pairs)} SOP class/transfer syntax pairs, at most 128 per send")
    if not pairs:
        return [unreadable[path] for path in paths]
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]
    with _association(ae_title, host, port, calling_ae, contexts, tls_context) as assoc:
        results = [unreadable.get(path) or _send_one(assoc, path) for path in paths]
    failed = sum(not result.ok for result in results)
    LOGGER.info(
        "sent %d files to %r at %s:%d, %d failed", len(results), ae_title, host, port, failed
    )
    return results


def _sop_class_and_syntax(path: Path) -> tuple[str, str]:
    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def _send_one(assoc: Association, path: Path) -> SendResult:
    if not assoc.is_established:
        return SendResult(path, None, "association lost before sending")
    try:
        response = assoc.send_c_store(path)
    except (ValueError, AttributeError, OSError) as exc:
        return SendResult(path, None, f"not sent: {exc}")
    status = response.get("Status")
    if status is None:
        return SendResult(path, None, "no response from the peer (timeout or abort)")
    return SendResult(path, int(status))


@contextmanager
def _association(
    ae_title: str,
    host: str,
    port: int,
    calling_ae: str,
    contexts: list[PresentationContext],
    tls_context: ssl.SSLContext | None,
) -> Iterator[Association]:
    """An established association, released on exit; typed errors when none opens."""
    ae = AE(ae_title=calling_ae)
    tls_args = (tls_context, host) if tls_context else None
    assoc = ae.associate(host, port, contexts, ae_title=ae_title, tls_args=tls_args)
    if assoc.is_rejected:
        raise AssociationRejectedError(ae_title, host, port)
    if not assoc.is_established:
        raise PeerUnreachableError(ae_title, host, port)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
