"""States and kinds stored in the job database, as str enums (stored by value)."""

from __future__ import annotations

from enum import StrEnum


class SeriesState(StrEnum):
    RECEIVING = "receiving"
    READY = "ready"
    QUEUED = "queued"
    SKIPPED = "skipped"
    DONE = "done"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class ResultKind(StrEnum):
    SEG = "seg"
    SR = "sr"
    SC = "sc"


class ExportState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"  # its job was superseded or cancelled before it was sent
