"""Errors the agent raises on purpose, in one hierarchy.

Entry points translate them in one place each: the CLI prints the message and exits 1,
the API maps them to HTTP status codes, the DICOM handlers to DIMSE statuses.
"""

from __future__ import annotations

from collections.abc import Sequence


class AgentError(Exception):
    """Base class for everything the agent raises on purpose; the message is for people."""


class ConfigError(AgentError):
    """The configuration is invalid; `lines` holds one readable line per problem."""

    def __init__(self, source: str, lines: Sequence[str]) -> None:
        self.source = source
        self.lines = list(lines)
        body = "\n".join(f"  {line}" for line in self.lines)
        super().__init__(f"invalid configuration ({source}):\n{body}")


class NotFoundError(AgentError):
    """A row asked for by its id does not exist."""

    def __init__(self, what: str, key: object) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key} not found")


class IllegalTransitionError(AgentError):
    """A job was asked to move to a state its current state does not allow."""

    def __init__(self, job_id: int, from_state: str, to_state: str) -> None:
        self.job_id = job_id
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"job {job_id}: cannot go from {from_state} to {to_state}")


class ConcurrentUpdateError(AgentError):
    """Another session changed the job first; reload it and decide again."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was changed by another session; reload and retry")


class LeaseLostError(AgentError):
    """A worker tried to finish a job it no longer holds (its lease ran out and was taken)."""

    def __init__(self, job_id: int, worker: str) -> None:
        self.job_id = job_id
        self.worker = worker
        super().__init__(f"job {job_id} is no longer held by worker {worker}")


class SpoolError(AgentError):
    """The spool could not durably write received bytes; nothing was acknowledged."""


class SpoolFullError(SpoolError):
    """The spool's filesystem is full (ENOSPC or EDQUOT); the sender keeps its copy and retries."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no space left in the spool at {path}")


class ReceiverStartError(AgentError):
    """A DICOM receiver process did not start serving; its own log lines say why."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"a DICOM receiver process {problem}")


class UnparsableInstanceError(AgentError):
    """Received bytes whose identifying tags cannot be read; they belong in quarantine."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SopClassMismatchError(UnparsableInstanceError):
    """The dataset's SOP Class UID differs from the one its C-STORE request announced."""


class StudyMismatchError(AgentError):
    """A STOW-RS request to one study carried an instance of another; it is not stored."""


class DicomNetworkError(AgentError):
    """A DICOM peer could not be used; `problem` says how, for people."""

    problem = "could not be used"

    def __init__(self, ae_title: str, host: str, port: int) -> None:
        self.ae_title = ae_title
        self.host = host
        self.port = port
        super().__init__(f"DICOM peer {ae_title} at {host}:{port} {self.problem}")


class PeerUnreachableError(DicomNetworkError):
    """No association could be opened: the peer is down, unreachable or aborted the request."""

    problem = "is unreachable"


class AssociationRejectedError(DicomNetworkError):
    """The peer answered but rejected the association (AE title, contexts or load)."""

    problem = "rejected the association"


class DatabaseError(AgentError):
    """The job database could not be used (unreachable, or its schema is not current)."""


class DestinationError(AgentError):
    """A configured destination cannot be used as it stands; the message says why."""
