"""What request handlers share: the application's state and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.db.session import database_errors, session_scope
from agent.dimse.ingest import Ingestor
from agent.spool import Spool


@dataclass(frozen=True)
class ApiState:
    """Built once by `create_app`; handlers reach it through `api_state(request)`."""

    settings: Settings
    sessions: sessionmaker[Session]
    spool: Spool
    ingestor: Ingestor  # STOW-RS in: the spool, indexed in the job database at once


def api_state(request: Request) -> ApiState:
    return cast(ApiState, request.app.state.agent)


def db_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed before the response is sent, rolled back if
    the handler raises; driver errors become DatabaseError."""
    with database_errors(), session_scope(api_state(request).sessions) as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session, scope="function")]
StateDep = Annotated[ApiState, Depends(api_state)]

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
PatientId = Annotated[str | None, Query(description="Only this Patient ID.")]
AccessionNumber = Annotated[str | None, Query(description="Only this Accession Number.")]
