"""STOW-RS in (PS3.18 10.5): `POST /dicom-web/studies` and `/dicom-web/studies/{study}`.

A PACS or modality that speaks DICOMweb sends a `multipart/related; type="application/dicom"`
body, one DICOM file per part. Each part takes the C-STORE path (`Ingestor.ingest`): durable
in the spool and recorded before it counts as stored, unparsable bytes kept in quarantine
with their reason. Parts are stored as they arrive, up to `PARTS_IN_FLIGHT` at once so
that they share fsyncs and commits; the body is never held whole.

The answer is a Store Instances Response in DICOM JSON: Referenced SOP Sequence for the
stored instances, Failed SOP Sequence with a Failure Reason (the C-STORE status codes, and
0xA901 for an instance of another study than the URL names) for the others; HTTP 200 when
all were stored, 202 when some were, 409 when none was.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from agent.api.deps import api_state
from agent.dicomweb.multipart import MediaType, MultipartError, MultipartReader
from agent.dicomweb.store_response import (
    DICOM_JSON,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    REFERENCED_SOP_SEQUENCE,
)
from agent.dimse.handlers import log_refusal
from agent.dimse.header import read_header
from agent.dimse.ingest import Ingestor
from agent.dimse.status import status_for
from agent.errors import StudyMismatchError, UnparsableInstanceError

LOGGER = logging.getLogger(__name__)
router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])

PARTS_IN_FLIGHT = 16
"""Parts being stored at once: they share their fsyncs and database commits (`Ingestor`)."""
STOW_PEER = "STOW-RS"
"""Recorded as the calling AE title of instances received over STOW-RS."""
DICOM = "application/dicom"
STUDY_MISMATCH = 0xA901
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            'multipart/related; type="application/dicom"': {
                "schema": {"type": "string", "format": "binary"}
            }
        },
    }
}


@dataclass(frozen=True)
class Outcome:
    """One part: its SOP class and instance UIDs where readable, and its failure reason
    (None: stored)."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    failure_reason: int | None = None

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if self.sop_class_uid:
            item[REFERENCED_SOP_CLASS_UID] = {"vr": "UI", "Value": [self.sop_class_uid]}
        if self.sop_instance_uid:
            item[REFERENCED_SOP_INSTANCE_UID] = {"vr": "UI", "Value": [self.sop_instance_uid]}
        if self.failure_reason is not None:
            item[FAILURE_REASON] = {"vr": "US", "Value": [self.failure_reason]}
        return item


@router.post("/studies", openapi_extra=REQUEST_BODY, response_class=JSONResponse)
async def store_instances(request: Request) -> JSONResponse:
    """Store the DICOM files of a multipart/related request (STOW-RS)."""
    return await _store(request, None)


@router.post("/studies/{study}", openapi_extra=REQUEST_BODY, response_class=JSONResponse)
async def store_study_instances(study: str, request: Request) -> JSONResponse:
    """Store the DICOM files of a multipart/related request; each must belong to `study`."""
    return await _store(request, study)


async def _store(request: Request, study: str | None) -> JSONResponse:
    reader = _reader(request.headers.get("content-type", ""))
    state = api_state(request)
    in_flight = asyncio.Semaphore(PARTS_IN_FLIGHT)
    tasks: list[asyncio.Task[Outcome]] = []

    async def store(part: bytes) -> Outcome:
        try:
            return await run_in_threadpool(
                store_part, state.ingestor, part, study, log_phi=state.settings.log_phi
            )
        finally:
            in_flight.release()

    try:
        async for chunk in request.stream():
            for part in reader.feed(chunk):
                await in_flight.acquire()
                tasks.append(asyncio.create_task(store(part)))
        reader.finish()
    except MultipartError as exc:
        await asyncio.gather(*tasks)  # what was read is stored all the same
        LOGGER.warning("STOW-RS body refused after %d parts: %s", len(tasks), exc)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    return response(list(await asyncio.gather(*tasks)))


def _reader(content_type: str) -> MultipartReader:
    media = MediaType.parse(content_type)
    declared = media.parameters.get("type", DICOM).lower()
    if media.type != "multipart/related" or declared != DICOM:
        LOGGER.warning("STOW-RS request of Content-Type %r refused", content_type)
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f'send multipart/related; type="{DICOM}" (one DICOM file per part)',
        )
    try:
        return MultipartReader(media.parameters.get("boundary", ""))
    except MultipartError as exc:
        LOGGER.warning("STOW-RS request of Content-Type %r refused: %s", content_type, exc)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc


def store_part(ingestor: Ingestor, part: bytes, study: str | None, *, log_phi: bool) -> Outcome:
    """Ingest one part, whatever media type its own header claims: a DICOM file is stored,
    anything else quarantined as unparsable."""
    try:
        instance = ingestor.ingest(part, calling_ae=STOW_PEER, study_instance_uid=study)
    except Exception as exc:  # the guard: a failed part, the request goes on
        log_refusal(exc, "STOW-RS part", log_phi=log_phi)
        reason = STUDY_MISMATCH if isinstance(exc, StudyMismatchError) else int(status_for(exc))
        return Outcome(*_uids(part), failure_reason=reason)
    return Outcome(instance.sop_class_uid, instance.sop_instance_uid)


def _uids(raw: bytes) -> tuple[str | None, str | None]:
    """The SOP class and instance UIDs of a part that was not stored, if they can be read."""
    try:
        header = read_header(raw)
    except UnparsableInstanceError:
        return None, None
    return header.sop_class_uid, header.sop_instance_uid


def response(outcomes: list[Outcome]) -> JSONResponse:
    stored = [o for o in outcomes if o.failure_reason is None]
    failed = [o for o in outcomes if o.failure_reason is not None]
    body: dict[str, Any] = {}
    if stored:
        body[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": [o.item() for o in stored]}
    if failed:
        body[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": [o.item() for o in failed]}
    if not failed:
        code = status.HTTP_200_OK
    elif stored:
        code = status.HTTP_202_ACCEPTED
    else:
        code = status.HTTP_409_CONFLICT
    return JSONResponse(body, status_code=code, media_type=DICOM_JSON)
