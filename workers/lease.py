"""Keeping a running job's lease while one of its stages runs.

A job's lease is renewed when a stage ends (`agent.jobs.record_stage`); a stage longer than
`job_lease_seconds` (a very large study, a slow model, a busy CPU) would otherwise let the
lease run out and another worker claim the job while this one still runs it. `LeaseKeeper`
renews the lease from a thread of its own, with a session of its own, every third of the
lease, for as long as a stage runs. The runner stops it before it writes to the job itself,
so the two never write the job row at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Job
from agent.errors import ConcurrentUpdateError, LeaseLostError
from agent.jobs import renew_lease

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3


class LeaseKeeper:
    """Renews `worker`'s lease on a job while `kept` is entered."""

    def __init__(self, sessions: sessionmaker[Session], worker: str, lease_seconds: float):
        self._sessions = sessions
        self._worker = worker
        self._lease_seconds = lease_seconds

    @contextmanager
    def kept(self, job_id: int) -> Iterator[None]:
        """Renew the lease in the background until the block ends (the thread is joined)."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._renew_until, args=(job_id, stop), name=f"lease-{job_id}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _renew_until(self, job_id: int, stop: threading.Event) -> None:
        while not stop.wait(self._lease_seconds / RENEWALS_PER_LEASE):
            try:
                self._renew(job_id)
            except (LeaseLostError, ConcurrentUpdateError) as exc:
                log.warning("job %d: lease not renewed, %s", job_id, exc)
                return  # the runner finds out when its stage ends
            except SQLAlchemyError as exc:  # the database may be back by the next try
                log.warning("job %d: renewing the lease failed (%s)", job_id, type(exc).__name__)

    def _renew(self, job_id: int) -> None:
        with self._sessions() as session:
            job = session.get_one(Job, job_id)
            renew_lease(session, job, self._worker, self._lease_seconds)
            session.commit()
