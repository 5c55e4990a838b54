"""The agent's errors map to HTTP statuses through their class hierarchy."""

from __future__ import annotations

import pytest

from agent.api.errors import http_status
from agent.errors import (
    AgentError,
    ConfigError,
    DatabaseError,
    IllegalTransitionError,
    NotFoundError,
    PeerUnreachableError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFoundError("job", 1), 404),
        (IllegalTransitionError(1, "queued", "queued"), 409),
        (PeerUnreachableError("PACS", "127.0.0.1", 104), 502),  # via DicomNetworkError
        (DatabaseError("down"), 503),
        (ConfigError("agent.yaml", ["port: too big"]), 500),
        (AgentError("anything else"), 500),
    ],
)
def test_status_for_each_error(error: AgentError, status: int) -> None:
    assert http_status(error) == status
