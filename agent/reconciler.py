"""The reconciler: job and export rows are the truth, messages only wake workers.

`Reconciler.tick` (every `reconcile_interval_seconds` under `serve`) sends a message again
for every piece of work a worker should be doing and may have no message for:

- a running job whose lease ran out (its worker died or hangs): the next worker's
  `claim_job` takes it over. After `MAX_JOB_ATTEMPTS` claims the job is failed instead
  ("worker lost ..."), so a job that kills its worker cannot loop for ever;
- a queued job (after `jobs retry`, a restart, or a lost message);
- a pending export whose next attempt is overdue.

A message is sent again only if this process sent none for that job or export within
`resend_after` seconds (`Outbox` remembers), so a backlog does not pile up duplicates. A
duplicate is harmless anyway: `claim_job` is atomic and exports are attempted only when due.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.enums import ExportState, JobState
from agent.db.models import Export, Job, utcnow
from agent.db.queries import expired_jobs
from agent.db.session import session_scope
from agent.jobs import transition

log = logging.getLogger(__name__)

MAX_JOB_ATTEMPTS = 3


class Dispatcher(Protocol):
    """Sends the messages that wake workers (`workers.celery_app.CeleryDispatcher`)."""

    def send_job(self, job_id: int, priority: int) -> None: ...

    def send_export(self, export_id: int) -> None: ...


class Outbox:
    """Sends through a dispatcher and remembers when it last sent for each job and export.
    Shared by the completion and reconciler threads."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._lock = threading.Lock()
        self._jobs: dict[int, datetime] = {}
        self._exports: dict[int, datetime] = {}

    def send_job(self, job_id: int, priority: int, now: datetime | None = None) -> None:
        self._dispatcher.send_job(job_id, priority)
        with self._lock:
            self._jobs[job_id] = now or utcnow()

    def send_export(self, export_id: int, now: datetime | None = None) -> None:
        self._dispatcher.send_export(export_id)
        with self._lock:
            self._exports[export_id] = now or utcnow()

    def job_due(self, job_id: int, now: datetime, resend_after: timedelta) -> bool:
        with self._lock:
            return _due(self._jobs.get(job_id), now, resend_after)

    def export_due(self, export_id: int, now: datetime, resend_after: timedelta) -> bool:
        with self._lock:
            return _due(self._exports.get(export_id), now, resend_after)

    def keep_only(self, job_ids: set[int], export_ids: set[int]) -> None:
        """Forget what was sent for work that is no longer waiting (bounds the memory)."""
        with self._lock:
            self._jobs = {key: at for key, at in self._jobs.items() if key in job_ids}
            self._exports = {key: at for key, at in self._exports.items() if key in export_ids}


def _due(last_sent: datetime | None, now: datetime, resend_after: timedelta) -> bool:
    return last_sent is None or now - last_sent >= resend_after


@dataclass(frozen=True)
class ReconcileReport:
    """What one tick did, by id."""

    jobs_sent: tuple[int, ...] = ()
    jobs_failed: tuple[int, ...] = ()
    exports_sent: tuple[int, ...] = ()


class Reconciler:
    """Finds work without a live message and sends one; see the module doc."""

    def __init__(
        self, sessions: sessionmaker[Session], outbox: Outbox, resend_after_seconds: float
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._resend_after = timedelta(seconds=resend_after_seconds)

    def tick(self, now: datetime | None = None) -> ReconcileReport:
        """One pass over the rows; messages are sent after the transaction committed."""
        now = now or utcnow()
        with session_scope(self._sessions) as session:
            failed = self._fail_exhausted(session, now)
            waiting_jobs = self._waiting_jobs(session, now)
            waiting_exports = set(
                session.scalars(
                    select(Export.id).where(
                        Export.state == ExportState.PENDING,
                        Export.next_attempt_at <= now - self._resend_after,
                    )
                )
            )
        self._outbox.keep_only(set(waiting_jobs), waiting_exports)
        due = self._resend_after
        by_priority = sorted(waiting_jobs, key=lambda job: (-waiting_jobs[job], job))
        jobs = [job for job in by_priority if self._outbox.job_due(job, now, due)]
        exports = [e for e in sorted(waiting_exports) if self._outbox.export_due(e, now, due)]
        for job_id in jobs:
            self._outbox.send_job(job_id, waiting_jobs[job_id], now)
        for export_id in exports:
            self._outbox.send_export(export_id, now)
        if jobs or exports or failed:
            log.info(
                "reconciler: sent %d job(s), %d export(s); failed %d job(s)",
                len(jobs),
                len(exports),
                len(failed),
            )
        return ReconcileReport(tuple(jobs), tuple(failed), tuple(exports))

    def _waiting_jobs(self, session: Session, now: datetime) -> dict[int, int]:
        """Queued jobs and jobs whose lease ran out: id -> priority."""
        queued = session.execute(
            select(Job.id, Job.priority).where(Job.state == JobState.QUEUED)
        ).tuples()
        expired = {job.id: job.priority for job in expired_jobs(session, now)}
        return {**dict(queued.all()), **expired}

    def _fail_exhausted(self, session: Session, now: datetime) -> tuple[int, ...]:
        """Fail expired jobs that already had `MAX_JOB_ATTEMPTS` claims."""
        failed = []
        for job in expired_jobs(session, now):
            if job.attempts < MAX_JOB_ATTEMPTS:
                continue
            job.error = (
                f"worker lost {job.attempts} times while running this job (last: {job.worker}); "
                "given up, see `jobs retry`"
            )
            transition(session, job, JobState.FAILED, job.error, now=now)
            failed.append(job.id)
        return tuple(failed)
