"""The agent's errors as HTTP responses, translated in this one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from agent.errors import (
    AgentError,
    ConcurrentUpdateError,
    DatabaseError,
    DicomNetworkError,
    IllegalTransitionError,
    LeaseLostError,
    NotFoundError,
)

log = logging.getLogger(__name__)

HTTP_STATUS: Final[Mapping[type[AgentError], int]] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    IllegalTransitionError: status.HTTP_409_CONFLICT,
    ConcurrentUpdateError: status.HTTP_409_CONFLICT,
    LeaseLostError: status.HTTP_409_CONFLICT,
    DicomNetworkError: status.HTTP_502_BAD_GATEWAY,
    DatabaseError: status.HTTP_503_SERVICE_UNAVAILABLE,
}
"""The status for each error class; a subclass takes its nearest listed ancestor's, and
anything else the agent raises is a 500."""


def http_status(error: AgentError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return status.HTTP_500_INTERNAL_SERVER_ERROR


async def _agent_error(request: Request, error: AgentError) -> JSONResponse:
    code = http_status(error)
    name = type(error).__name__
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.error("%s %s failed with %s", request.method, request.url.path, name)
    return JSONResponse({"detail": str(error), "error": name}, status_code=code)


def add_error_handlers(app: FastAPI) -> None:
    app.exception_handler(AgentError)(_agent_error)
