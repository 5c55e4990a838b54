"""Bearer-token authentication for everything that shows or changes data.

Tokens come from `api.tokens` in the configuration. With none configured the API refuses
every protected request (401) and says how to add one; nothing is generated behind the
operator's back. `/healthz`, `/docs`, the OpenAPI schema and the web page's static files need
no token: they carry no data.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from agent.api.deps import api_state

log = logging.getLogger(__name__)

NO_TOKENS_CONFIGURED = (
    "the API has no token configured, so it refuses every request: add one under `api: tokens:`"
    ' in agent.yaml or set DICOM_AGENT_API=\'{"tokens": ["<a long random string>"]}\''
    " (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), then restart"
)
TOKEN_REQUIRED = "a valid API token is required: send `Authorization: Bearer <token>`"

bearer = HTTPBearer(
    auto_error=False, description="One of the tokens listed under `api.tokens` in agent.yaml."
)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def token_matches(given: str, tokens: Sequence[SecretStr]) -> bool:
    """Whether `given` is one of `tokens`, in time independent of where or how they differ."""
    given_digest = _digest(given)
    matches = [hmac.compare_digest(given_digest, _digest(t.get_secret_value())) for t in tokens]
    return any(matches)


def _refuse(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let the request through only with one of the configured tokens."""
    tokens = api_state(request).settings.api.tokens
    if not tokens:
        raise _refuse(NO_TOKENS_CONFIGURED)
    if credentials is None or not token_matches(credentials.credentials, tokens):
        client = request.client.host if request.client else "unknown"
        log.warning("refused %s from %s: no valid token", request.url.path, client)
        raise _refuse(TOKEN_REQUIRED)
