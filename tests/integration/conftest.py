"""Seeded job databases for integration tests; the databases themselves (SQLite and
PostgreSQL) come from `tests.support.fixtures`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent import jobs
from agent.db.models import Series
from agent.db.queries import record_instance
from agent.db.session import session_scope
from tests.conftest import MakeReceived

SeedJobs = Callable[[sessionmaker[Session]], list[int]]


@pytest.fixture
def seed_jobs(make_received: MakeReceived) -> SeedJobs:
    """Adds two jobs to a migrated database and returns their ids: first a failed one
    (patient P1, accession ACC-0, priority 0), then a queued one (P2, ACC-1, priority 1)."""

    def seed(sessions: sessionmaker[Session]) -> list[int]:
        with session_scope(sessions) as session:
            created = []
            for n, patient in enumerate(["P1", "P2"]):
                received = make_received(
                    study_instance_uid=f"1.{n}",
                    series_instance_uid=f"1.{n}.1",
                    patient_id=patient,
                    accession_number=f"ACC-{n}",
                )
                record_instance(session, received)
                uid_is = Series.series_instance_uid == received.series_instance_uid
                series = session.scalars(select(Series).where(uid_is)).one()
                created.append(
                    jobs.create_job(session, series, pipeline="lung", rule="ct", priority=n)
                )
            jobs.claim_job(session, created[0].id, "w1", 600)
            jobs.fail_job(session, created[0], "w1", "model crashed")
            return [job.id for job in created]

    return seed
