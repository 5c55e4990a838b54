"""`/api/quarantine`: received files that could not be used, and why."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from agent.api.deps import StateDep
from agent.spool import QuarantinedFile

router = APIRouter(prefix="/api/quarantine", tags=["quarantine"])


class QuarantinedFileRead(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    reason: str
    calling_ae: str
    received_at: datetime
    size_bytes: int

    @classmethod
    def of(cls, quarantined: QuarantinedFile) -> QuarantinedFileRead:
        return cls(
            name=quarantined.path.name,
            path=str(quarantined.path),
            reason=quarantined.reason,
            calling_ae=quarantined.calling_ae,
            received_at=quarantined.received_at,
            size_bytes=quarantined.size_bytes,
        )


@router.get("")
def list_(state: StateDep) -> list[QuarantinedFileRead]:
    """Every quarantined file, oldest first."""
    return [QuarantinedFileRead.of(item) for item in state.spool.list_quarantine()]
