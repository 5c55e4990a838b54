"""`/api/jobs`: list, inspect, retry and cancel AI jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from agent import jobs
from agent.api.deps import AccessionNumber, Limit, PatientId, SessionDep
from agent.db.enums import JobState
from agent.db.queries import JobFilter, get_job, list_jobs
from agent.db.schemas import JobDetail, JobRead

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("")
def list_(
    session: SessionDep,
    state: Annotated[list[JobState] | None, Query(description="Only these states.")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Created at or after (ISO 8601 with offset).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Created before (ISO 8601 with offset).")
    ] = None,
    patient: PatientId = None,
    accession: AccessionNumber = None,
    limit: Limit = 100,
) -> list[JobRead]:
    """Jobs, newest first."""
    where = JobFilter(
        states=tuple(state or ()),
        since=since,
        until=until,
        patient_id=patient,
        accession_number=accession,
        limit=limit,
    )
    return [JobRead.model_validate(job) for job in list_jobs(session, where)]


@router.get("/{job_id}")
def show(session: SessionDep, job_id: int) -> JobDetail:
    """One job with its events, results and exports."""
    return JobDetail.model_validate(get_job(session, job_id))


@router.post("/{job_id}/retry")
def retry(session: SessionDep, job_id: int) -> JobRead:
    """Queue a failed or cancelled job again (409 from any other state)."""
    return JobRead.model_validate(jobs.retry_job(session, job_id, "retry requested from the API"))


@router.post("/{job_id}/cancel")
def cancel(session: SessionDep, job_id: int) -> JobRead:
    """Cancel a queued or running job (409 from any other state)."""
    return JobRead.model_validate(jobs.cancel_job(session, job_id, "cancelled from the API"))
