"""The durable spool: received bytes on disk exactly as received, under names made of hashes.

Layout under the spool root:

- `instances/<h(study)[:2]>/<h(study)>/<h(series)>/<h(sop)>.dcm`, `h` = SHA-256 hex of a UID;
- `results/` the same layout, for the result objects the workers made (SEG, SR, key images);
- `quarantine/<UTC time>-<random>.dcm` with `<same name>.reason.json` beside it;
- `tmp/`: files being written; renamed into place once their bytes and directory are on disk.

Raw UIDs never become file names. Every write goes to `tmp/` on the same filesystem (around
the page cache where it can: `agent.direct_write`), is fsynced, renamed atomically and the
directory fsynced, so a file that exists under `instances/` or `quarantine/` is complete.

`store` does all of that for one file. Receivers that write many files at once split it:
`stage` (write to `tmp/` and fsync, in parallel), then `place` each file (rename) and
`sync_directories` once for the whole batch, so a series' directory is fsynced once per batch
rather than once per file.

What is durable once `store` returns, or `sync_directories` for a placed file: the bytes and
the inode (the `fsync` of the file before the rename, so no crash can give the final name to
incomplete bytes); the final name (the `fsync` of its directory after `os.replace`); and
every directory on the way, each created one's parent having been fsynced. The old name's
removal from `tmp/` is not synced: after a crash a second name for the same complete file
may at worst remain there, and nothing reads `tmp/`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from agent.direct_write import write_all, write_new_file
from agent.errors import SpoolError, SpoolFullError

LOGGER = logging.getLogger(__name__)

INSTANCES_DIR = "instances"
RESULTS_DIR = "results"
QUARANTINE_DIR = "quarantine"
TMP_DIR = "tmp"
REASON_SUFFIX = ".reason.json"

_CHUNK_BYTES = 1024 * 1024
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreOutcome(StrEnum):
    """What `Spool.store` did with the bytes."""

    NEW = "new"
    DUPLICATE = "duplicate"  # same SOP Instance UID, same bytes: nothing written
    REPLACED = "replaced"  # same SOP Instance UID, different bytes: the newest kept


@dataclass(frozen=True)
class StagedFile:
    """Bytes written and fsynced under `tmp/`, waiting for `Spool.place` to name them."""

    temp: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class StoredFile:
    """An instance durably in the spool."""

    path: Path
    relative_path: str
    sha256: str
    size_bytes: int
    outcome: StoreOutcome


@dataclass(frozen=True)
class QuarantinedFile:
    """A quarantined file and why it is there, for the admin surface."""

    path: Path
    reason: str
    calling_ae: str
    received_at: datetime
    size_bytes: int


def uid_hash(uid: str) -> str:
    """The SHA-256 hex digest that stands for a UID in file names."""
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()


def instance_relative_path(
    study_uid: str, series_uid: str, sop_uid: str, area: str = INSTANCES_DIR
) -> str:
    """The spool-relative path (POSIX form) of an instance in `area`, made only of hashes."""
    study = uid_hash(study_uid)
    return f"{area}/{study[:2]}/{study}/{uid_hash(series_uid)}/{uid_hash(sop_uid)}.dcm"


class Spool:
    """Files on disk: the source of truth for received bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._quarantine = root / QUARANTINE_DIR
        self._tmp = root / TMP_DIR
        for directory in (root / INSTANCES_DIR, self._quarantine, self._tmp):
            self._make_dirs(directory)

    def path_of(self, relative_path: str) -> Path:
        """The absolute path of a spool-relative path such as `StoredFile.relative_path`."""
        relative = PurePosixPath(relative_path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"not a path inside the spool: {relative_path!r}")
        return self.root.joinpath(*relative.parts)

    def store(
        self, raw: bytes | BinaryIO, *, study_uid: str, series_uid: str, sop_uid: str
    ) -> StoredFile:
        """Write a DICOM Part 10 file as-is under its hashed name; return once it is durable.

        A re-send with the same bytes writes nothing; different bytes for the same SOP
        Instance UID replace the older file (logged). Raises `SpoolFullError` when the disk
        is full and `SpoolError` on any other write failure; nothing is half-written then.
        """
        relative_path = instance_relative_path(study_uid, series_uid, sop_uid)
        return self._store_at(relative_path, self.stage(raw))

    def store_result(
        self, raw: bytes, *, study_uid: str, series_uid: str, sop_uid: str
    ) -> StoredFile:
        """Write a result object the workers made under `results/`, durably, like `store`.

        Encoding a job again gives the same UIDs, so its files are replaced in place.
        """
        relative_path = instance_relative_path(study_uid, series_uid, sop_uid, RESULTS_DIR)
        return self._store_at(relative_path, self.stage(raw))

    def stage(self, raw: bytes | BinaryIO, sha256: str | None = None) -> StagedFile:
        """Write `raw` to a new file under `tmp/` and fsync it; `place` names it later.

        `sha256`: the bytes' digest, when the caller has computed it already.
        """
        with self._disk_errors():
            temp, digest, size = self._write_temp(raw, sha256)
        return StagedFile(temp, digest, size)

    def place(self, staged: StagedFile, relative_path: str) -> StoredFile:
        """Rename a staged file to `relative_path` (or drop it: same bytes already there).

        The rename is atomic but not yet durable: call `sync_directories` before telling
        anyone the file is stored. The staged file is gone afterwards, even on failure.
        Results are replaced in place by design; a replaced received instance is logged.
        """
        target = self.path_of(relative_path)
        with self._disk_errors():
            try:
                outcome = self._place(staged.temp, target, staged.sha256, staged.size_bytes)
            except BaseException:
                staged.temp.unlink(missing_ok=True)
                raise
        if outcome is StoreOutcome.REPLACED and relative_path.startswith(INSTANCES_DIR):
            LOGGER.warning("replaced %s: same SOP Instance UID, different bytes", relative_path)
        return StoredFile(target, relative_path, staged.sha256, staged.size_bytes, outcome)

    def discard(self, staged: StagedFile) -> None:
        """Remove a staged file that will not be placed."""
        staged.temp.unlink(missing_ok=True)

    def sync_directories(self, placed: Iterable[Path]) -> None:
        """Make the names of placed files durable: one fsync per distinct directory.

        Sync a duplicate's directory too: its file may have been placed a moment ago by
        another process whose own sync has not finished yet.
        """
        with self._disk_errors():
            for directory in sorted({path.parent for path in placed}):
                fsync_dir(directory)

    def _store_at(self, relative_path: str, staged: StagedFile) -> StoredFile:
        stored = self.place(staged, relative_path)
        self.sync_directories([stored.path])
        return stored

    def instance_paths(self) -> Iterator[str]:
        """The spool-relative path of every received instance's file."""
        for path in (self.root / INSTANCES_DIR).glob("*/*/*/*.dcm"):
            yield path.relative_to(self.root).as_posix()

    def quarantine(self, raw: bytes | BinaryIO, reason: str, peer: str) -> Path:
        """Keep bytes that cannot be used, with a `.reason.json` beside them; return the path."""
        received_at = datetime.now(UTC)
        stem = f"{received_at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"
        target = self._quarantine / f"{stem}.dcm"
        with self._disk_errors():
            sha256, size = self._write_new(raw, target)
            note = {
                "reason": reason,
                "calling_ae": peer,
                "received_at": received_at.isoformat(),
                "size_bytes": size,
                "sha256": sha256,
            }
            note_bytes = json.dumps(note, indent=2).encode("utf-8")
            self._write_new(note_bytes, self._quarantine / f"{stem}{REASON_SUFFIX}")
            fsync_dir(self._quarantine)
        return target

    def list_quarantine(self) -> list[QuarantinedFile]:
        """Every quarantined file, oldest first; a missing reason file is shown as such."""
        return [self._read_quarantined(path) for path in sorted(self._quarantine.glob("*.dcm"))]

    def _read_quarantined(self, path: Path) -> QuarantinedFile:
        stat = path.stat()
        reason, calling_ae = "reason file missing or unreadable", ""
        received_at = datetime.fromtimestamp(stat.st_mtime, UTC)
        try:
            note = json.loads(path.with_name(path.stem + REASON_SUFFIX).read_text("utf-8"))
            reason, calling_ae = str(note["reason"]), str(note["calling_ae"])
            received_at = datetime.fromisoformat(note["received_at"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOGGER.warning("quarantine note for %s unreadable: %s", path.name, exc)
        return QuarantinedFile(path, reason, calling_ae, received_at, stat.st_size)

    def _write_temp(
        self, raw: bytes | BinaryIO, sha256: str | None = None
    ) -> tuple[Path, str, int]:
        """Write `raw` to a new fsynced file under `tmp/`; return its path, SHA-256 (`sha256`
        if the caller has it already) and size."""
        if isinstance(raw, bytes):
            path = write_new_file(self._tmp, ".part", raw)
            return path, sha256 or hashlib.sha256(raw).hexdigest(), len(raw)
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".part")
        try:
            digest, size = _copy(raw, fd)
            os.fsync(fd)
        except BaseException:
            os.unlink(name)
            raise
        finally:
            os.close(fd)
        return Path(name), digest, size

    def _write_new(self, raw: bytes | BinaryIO, target: Path) -> tuple[str, int]:
        """Write `raw` durably to `target` (new name, no comparison); return SHA-256 and size."""
        temp, sha256, size = self._write_temp(raw)
        try:
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return sha256, size

    def _place(self, temp: Path, target: Path, sha256: str, size: int) -> StoreOutcome:
        """Rename `temp` to `target` unless `target` already holds the same bytes."""
        outcome = StoreOutcome.NEW
        if target.exists():
            if target.stat().st_size == size and _file_sha256(target) == sha256:
                temp.unlink()
                return StoreOutcome.DUPLICATE
            outcome = StoreOutcome.REPLACED
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the series' first file: its directories do not exist yet
            self._make_dirs(target.parent)
            os.replace(temp, target)
        return outcome

    def _make_dirs(self, directory: Path) -> None:
        """Create missing directories, fsyncing each parent so the new entries survive a crash."""
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            fsync_dir(created.parent)

    @contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """Turn OS write failures into the spool's typed errors."""
        try:
            yield
        except OSError as exc:
            if exc.errno in _DISK_FULL_ERRNOS:
                raise SpoolFullError(str(self.root)) from exc
            raise SpoolError(f"cannot write to the spool at {self.root}: {exc}") from exc


def _copy(raw: BinaryIO, fd: int) -> tuple[str, int]:
    """Write a stream to `fd`, hashing as it goes; return the SHA-256 hex digest and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := raw.read(_CHUNK_BYTES):
        write_all(fd, chunk)
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _file_sha256(path: Path) -> str:
    with path.open("rb") as existing:
        return hashlib.file_digest(existing, "sha256").hexdigest()


def fsync_dir(directory: Path) -> None:
    """Make the entries of `directory` (a rename into it, say) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
