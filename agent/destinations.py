"""Is a configured destination usable? C-ECHO a DICOM peer, query a DICOMweb service (QIDO-RS),
try writing into a folder."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from agent.config import DicomWebDestination, DimseDestination, FolderDestination, Settings
from agent.dicomweb import client as dicomweb
from agent.dimse import scu
from agent.dimse.tls import destination_tls_context
from agent.errors import DestinationError

log = logging.getLogger(__name__)

AnyDestination = DimseDestination | FolderDestination | DicomWebDestination


def find_destination(settings: Settings, name: str) -> AnyDestination:
    """The destination called `name`; DestinationError naming the configured ones if none."""
    for destination in settings.destinations:
        if destination.name == name:
            return destination
    known = ", ".join(d.name for d in settings.destinations) or "none"
    raise DestinationError(f"no destination named {name!r}; configured: {known}")


def check_destination(destination: AnyDestination, calling_ae: str) -> str:
    """A line saying the destination is usable; an AgentError saying why not otherwise."""
    if isinstance(destination, DimseDestination):
        return _echo(destination, calling_ae)
    if isinstance(destination, FolderDestination):
        return _check_folder(destination.path)
    return _query(destination)


def _query(destination: DicomWebDestination) -> str:
    try:
        return dicomweb.check(str(destination.url), token=destination.bearer_token())
    except dicomweb.StowError as exc:
        raise DestinationError(str(exc)) from exc


def _echo(destination: DimseDestination, calling_ae: str) -> str:
    where = f"{destination.ae_title} at {destination.host}:{destination.port}"
    where += " over TLS" if destination.tls else ""
    tls = destination_tls_context(destination.tls)
    if not scu.echo(
        destination.ae_title, destination.host, destination.port, calling_ae, tls_context=tls
    ):
        raise DestinationError(f"C-ECHO to {where} was answered with a failure status")
    log.info("C-ECHO to %s succeeded", where)
    return f"C-ECHO to {where} succeeded"


def _check_folder(path: Path) -> str:
    """Write and delete a file in `path`, or in its nearest existing parent if it is missing."""
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise DestinationError(f"{existing} exists but is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise DestinationError(f"cannot write in {existing}: {exc.strerror}") from exc
    if existing == path:
        return f"folder {path} is writable"
    return f"folder {path} does not exist yet; it can be created in {existing}"
