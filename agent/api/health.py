"""`/healthz`: is the job database reachable? Needs no token, for load balancers and probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from agent.api.deps import SessionDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", responses={503: {"description": "The job database is unreachable."}})
def healthz(session: SessionDep) -> Health:
    """200 when the job database answers; 503 (DatabaseError) when it does not."""
    session.execute(text("SELECT 1"))
    return Health(status="ok")
