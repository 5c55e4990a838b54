"""`/api/studies`: what has been received."""

from __future__ import annotations

from fastapi import APIRouter

from agent.api.deps import AccessionNumber, Limit, PatientId, SessionDep
from agent.db.queries import list_studies
from agent.db.schemas import StudySummaryRead

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.get("")
def list_(
    session: SessionDep,
    patient: PatientId = None,
    accession: AccessionNumber = None,
    limit: Limit = 100,
) -> list[StudySummaryRead]:
    """Received studies, newest first, with their series and instance counts."""
    found = list_studies(session, patient_id=patient, accession_number=accession, limit=limit)
    return [StudySummaryRead.model_validate(summary) for summary in found]
