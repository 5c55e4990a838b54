"""Exports: one result object to one destination, retried with backoff, never sent twice.

Destinations:

- folder: an atomic copy to `<path>/<h(study)>/<kind>-<h(series)>/<h(sop)>.dcm`, `h` the
  first 16 hex digits of the SHA-256 of a UID (raw UIDs never become file names);
- dimse: C-STORE to the peer, calling with the agent's AE title;
- dicomweb: STOW-RS (`agent.dicomweb.client`), with the destination's bearer token if it has one;
  a refusal the server would repeat (4xx, or instances it failed to store) fails at once.

An export row records its attempts, last error, next attempt time and when it was sent.
A failed attempt leaves it pending, due again after `retry_delay` (export_backoff_seconds,
then twice, four times that...), until `export_max_attempts` attempts have failed: then it is
failed. A sent or failed export is never attempted again, and a pending one only when due,
so duplicate messages are harmless. A pending export whose job has been superseded (late
instances re-opened the series) or cancelled meanwhile is withdrawn instead: the newer job's
results take its place.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, selectinload

from agent.config import DicomWebDestination, DimseDestination, FolderDestination, Settings
from agent.db.enums import ExportState, JobState
from agent.db.models import Export, Job, Result, Series, utcnow
from agent.destinations import find_destination
from agent.dicomweb import client as dicomweb
from agent.dimse.scu import send_files
from agent.dimse.tls import destination_tls_context
from agent.errors import DestinationError, DicomNetworkError, NotFoundError
from agent.spool import Spool, fsync_dir, uid_hash

log = logging.getLogger(__name__)

NAME_HASH_DIGITS = 16
DUE_SLACK = timedelta(seconds=1)
WITHDRAWING_JOB_STATES = frozenset({JobState.SUPERSEDED, JobState.CANCELLED})
"""A newer job's results replace these; pending exports of them are not sent."""
"""A message arriving this much before an export's next attempt time still counts as due."""


class ExportError(Exception):
    """One attempt failed; `permanent` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ExportAttempt:
    """What `export_once` did: the export's state after it, and when to try again (seconds,
    only when a retry is scheduled)."""

    export_id: int
    state: ExportState
    attempted: bool
    retry_in: float | None = None
    error: str | None = None


def retry_delay(failed_attempts: int, base_seconds: float) -> float:
    """Seconds to wait after the `failed_attempts`-th failure: base * 2**(failed_attempts - 1)."""
    return base_seconds * 2 ** max(failed_attempts - 1, 0)


def _load_export(session: Session, export_id: int) -> Export:
    export = session.get(
        Export,
        export_id,
        options=[
            selectinload(Export.result)
            .selectinload(Result.job)
            .selectinload(Job.series)
            .selectinload(Series.study)
        ],
        populate_existing=True,
    )
    if export is None:
        raise NotFoundError("export", export_id)
    return export


def export_once(
    session: Session,
    spool: Spool,
    settings: Settings,
    export_id: int,
    now: datetime | None = None,
) -> ExportAttempt:
    """Attempt export `export_id` once, if it is pending and due, and record the outcome."""
    now = now or utcnow()
    export = _load_export(session, export_id)
    due = export.next_attempt_at is None or export.next_attempt_at <= now + DUE_SLACK
    if export.state != ExportState.PENDING or not due:
        return ExportAttempt(export.id, export.state, attempted=False)
    job = export.result.job
    if job.state in WITHDRAWING_JOB_STATES:
        export.state = ExportState.WITHDRAWN
        export.next_attempt_at = None
        export.last_error = f"not sent: job {job.id} was {job.state.value}" + (
            f" by job {job.superseded_by}" if job.superseded_by is not None else ""
        )
        log.info("export %d to %s withdrawn: %s", export.id, export.destination, export.last_error)
        return ExportAttempt(export.id, export.state, attempted=False)
    export.attempts += 1
    try:
        deliver(settings, export.destination, spool.path_of(export.result.path), export.result)
    except ExportError as exc:
        return _record_failure(export, exc, settings, now)
    export.state = ExportState.SENT
    export.sent_at = now
    export.last_error = None
    export.next_attempt_at = None
    log.info("export %d sent to %s (attempt %d)", export.id, export.destination, export.attempts)
    return ExportAttempt(export.id, export.state, attempted=True)


def _record_failure(
    export: Export, exc: ExportError, settings: Settings, now: datetime
) -> ExportAttempt:
    export.last_error = str(exc)
    if exc.permanent or export.attempts >= settings.export_max_attempts:
        export.state = ExportState.FAILED
        export.next_attempt_at = None
        log.warning(
            "export %d to %s failed after %d attempt(s): %s",
            export.id,
            export.destination,
            export.attempts,
            exc,
        )
        return ExportAttempt(export.id, export.state, attempted=True, error=str(exc))
    delay = retry_delay(export.attempts, settings.export_backoff_seconds)
    export.next_attempt_at = now + timedelta(seconds=delay)
    log.info("export %d to %s: %s; retry in %.1f s", export.id, export.destination, exc, delay)
    return ExportAttempt(export.id, export.state, attempted=True, retry_in=delay, error=str(exc))


def deliver(settings: Settings, destination_name: str, path: Path, result: Result) -> None:
    """Send one result file to the destination called `destination_name`; ExportError if not."""
    try:
        destination = find_destination(settings, destination_name)
    except DestinationError as exc:
        raise ExportError(str(exc), permanent=True) from exc
    if isinstance(destination, FolderDestination):
        copy_to_folder(path, folder_target(destination.path, result))
    elif isinstance(destination, DimseDestination):
        _send_dimse(destination, path, settings.ae_title)
    else:
        _send_stow(destination, path)


def folder_target(root: Path, result: Result) -> Path:
    """Where a folder destination keeps a result: names made of UID hashes and its kind."""
    study_uid = result.job.series.study.study_instance_uid
    return (
        root
        / _short_hash(study_uid)
        / f"{result.kind.value}-{_short_hash(result.series_instance_uid)}"
        / f"{_short_hash(result.sop_instance_uid)}.dcm"
    )


def _short_hash(uid: str) -> str:
    return uid_hash(uid)[:NAME_HASH_DIGITS]


def copy_to_folder(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically and durably (a partial file is never visible)."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as reader, temp.open("wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise ExportError(f"cannot write {target.name} to the folder: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)


def _send_stow(destination: DicomWebDestination, path: Path) -> None:
    try:
        dicomweb.store(str(destination.url), [path.read_bytes()], token=destination.bearer_token())
    except dicomweb.StowError as exc:
        raise ExportError(str(exc), permanent=not exc.transient) from exc


def _send_dimse(destination: DimseDestination, path: Path, calling_ae: str) -> None:
    try:
        (sent,) = send_files(
            [path],
            destination.ae_title,
            destination.host,
            destination.port,
            calling_ae,
            tls_context=destination_tls_context(destination.tls),
        )
    except DicomNetworkError as exc:
        raise ExportError(str(exc)) from exc
    if not sent.ok:
        reason = sent.detail if sent.status is None else f"status 0x{sent.status:04X}"
        raise ExportError(f"{destination.name} did not store the object: {reason}")
