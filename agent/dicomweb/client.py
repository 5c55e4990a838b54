"""A DICOMweb client: STOW-RS (PS3.18 10.5) to store files, a QIDO-RS query to check a server.

`store` sends one request per call: a `multipart/related; type="application/dicom"` body
with one part per file, POSTed to `<url>/studies`. The server answers 200 (all stored),
202 (some stored: the failed ones are listed in Failed SOP Sequence with a reason) or an
error status. What is worth retrying (no connection, a timeout, 408, 429, 5xx) raises
`StowError` with `transient=True`; a refusal the server will repeat raises it with False.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import httpx

from agent.dicomweb.store_response import (
    DICOM_JSON,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    REFERENCED_SOP_INSTANCE_UID,
)

TRANSIENT_STATUSES = frozenset({408, 425, 429})
TIMEOUT_SECONDS = 60.0


class StowError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def check(url: str, *, token: str | None = None, timeout: float = 10.0) -> str:
    """Ask the service for one study (QIDO-RS); a line saying it answered, StowError if not."""
    endpoint = f"{url.rstrip('/')}/studies"
    try:
        response = httpx.get(
            endpoint, params={"limit": "1"}, headers=_headers(token), timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise StowError(f"QIDO-RS to {endpoint} failed: {exc}", transient=True) from exc
    if response.status_code not in (200, 204):
        raise StowError(f"QIDO-RS to {endpoint} answered {response.status_code}", transient=False)
    return f"DICOMweb service at {url} answered a study query"


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": DICOM_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def store(
    url: str, files: Sequence[bytes], *, token: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> None:
    """Store `files` (DICOM Part 10 bytes) at the DICOMweb service `url`; StowError if not."""
    boundary = f"dicom-agent-{secrets.token_hex(12)}"
    headers = {
        **_headers(token),
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
    }
    endpoint = f"{url.rstrip('/')}/studies"
    try:
        response = httpx.post(
            endpoint, content=multipart(files, boundary), headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise StowError(f"STOW-RS to {endpoint} failed: {exc}", transient=True) from exc
    _check(response, endpoint)


def multipart(files: Sequence[bytes], boundary: str) -> bytes:
    """The multipart/related body: one application/dicom part per file."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
    parts = [head + data + b"\r\n" for data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")


def _check(response: httpx.Response, endpoint: str) -> None:
    status = response.status_code
    if status == 200:
        return
    where = f"STOW-RS to {endpoint} answered {status}"
    if status == 202 or status == 409:
        raise StowError(f"{where}: {_failures(response)}", transient=False)
    transient = status >= 500 or status in TRANSIENT_STATUSES
    raise StowError(f"{where}: {response.text[:200]}", transient=transient)


def _failures(response: httpx.Response) -> str:
    """The failed instances and reasons from a STOW-RS response body, as one line."""
    try:
        body: Any = response.json()
        items = body[FAILED_SOP_SEQUENCE]["Value"]
        reasons = [
            f"{item[REFERENCED_SOP_INSTANCE_UID]['Value'][0]}: "
            f"reason 0x{item[FAILURE_REASON]['Value'][0]:04X}"
            for item in items
        ]
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:200] or "no details"
    return "; ".join(reasons) or "no details"
