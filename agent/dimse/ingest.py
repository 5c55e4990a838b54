"""Receiving instances, independent of the transport: read the header, spool, record.

The DIMSE handler calls `Ingestor.ingest` with the Part 10 bytes it received; nothing here
knows about pynetdicom, so STOW-RS can use the same path.

`ingest` returns only once the instance is durable and handed to the recorder. Concurrent
calls share the durability work (`agent.group_commit`): each caller writes its file under the
spool's `tmp/` and fsyncs it, then one of them renames every waiting file into place
(`os.replace`), fsyncs each of their directories once and hands the batch to the recorder.
So when `ingest` returns, the file's bytes and its final name are on disk (a crash now loses
neither), and the recorder has the index record: `agent.db.recorder.DatabaseRecorder` has
committed it, `agent.indexer.BackgroundIndexer` will commit it shortly (and
`agent.reindex` recovers it from the file should the process die first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.dimse.header import InstanceHeader, read_header
from agent.errors import SpoolError, StudyMismatchError, UnparsableInstanceError
from agent.group_commit import GroupCommit
from agent.received import ReceivedInstance
from agent.spool import Spool, StagedFile, instance_relative_path

LOGGER = logging.getLogger(__name__)


class InstanceRecorder(Protocol):
    """Indexes instances that are durably in the spool, all or none; idempotent per SOP UID."""

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None: ...


@dataclass(frozen=True)
class _Staged:
    """An instance written to the spool's `tmp/`, waiting for the group commit."""

    header: InstanceHeader
    file: StagedFile
    calling_ae: str


class Ingestor:
    """Check, store (or quarantine), record: what every receive path does with one instance."""

    def __init__(self, spool: Spool, recorder: InstanceRecorder, max_batch: int = 64) -> None:
        self._spool = spool
        self._recorder = recorder
        self._commits: GroupCommit[_Staged, ReceivedInstance] = GroupCommit(self._commit, max_batch)

    def ingest(
        self,
        raw: bytes,
        *,
        calling_ae: str,
        sha256: str | None = None,
        study_instance_uid: str | None = None,
    ) -> ReceivedInstance:
        """Make `raw` durable and recorded, or quarantine it and raise. `sha256`: the digest
        of `raw` if the caller has it already (the acceptor hashes while receiving);
        `study_instance_uid`: the study the instance must belong to (STOW-RS to one study).

        Raises `UnparsableInstanceError` (after quarantining), `StudyMismatchError` (nothing
        kept), `SpoolError` (nothing kept: the sender must retry) or whatever the recorder
        raises (the bytes stay spooled, and a re-send records them again).
        """
        try:
            header = read_header(raw)
        except UnparsableInstanceError as exc:
            path = self._spool.quarantine(raw, exc.reason, calling_ae)
            LOGGER.warning("quarantined %d bytes from %r as %s", len(raw), calling_ae, path.name)
            raise
        if study_instance_uid is not None and header.study_instance_uid != study_instance_uid:
            raise StudyMismatchError(
                f"instance of study {header.study_instance_uid} sent to study {study_instance_uid}"
            )
        staged = self._spool.stage(raw, sha256=sha256)
        return self._commits.submit(_Staged(header, staged, calling_ae))

    def _commit(self, batch: Sequence[_Staged]) -> list[ReceivedInstance | Exception]:
        """Place each staged file, fsync their directories, record the placed ones."""
        outcomes: list[ReceivedInstance | Exception] = []
        for staged in batch:
            header = staged.header
            relative_path = instance_relative_path(
                header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid
            )
            try:
                stored = self._spool.place(staged.file, relative_path)
            except SpoolError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(
                    received_instance(
                        header,
                        spool_path=stored.relative_path,
                        sha256=stored.sha256,
                        size_bytes=stored.size_bytes,
                        calling_ae=staged.calling_ae,
                    )
                )
        received = [outcome for outcome in outcomes if isinstance(outcome, ReceivedInstance)]
        self._spool.sync_directories([self._spool.path_of(i.spool_path) for i in received])
        self._recorder.record_batch(received)
        return outcomes


def received_instance(
    header: InstanceHeader,
    *,
    spool_path: str,
    sha256: str,
    size_bytes: int,
    calling_ae: str,
    received_at: datetime | None = None,
) -> ReceivedInstance:
    """The index record of a spooled instance: its header tags and its file's identity."""
    return ReceivedInstance(
        **vars(header),  # its fields, flat: no need for `asdict`'s deep copy
        spool_path=spool_path,
        size_bytes=size_bytes,
        sha256=sha256,
        received_at=received_at or datetime.now(UTC),
        calling_ae=calling_ae,
    )
