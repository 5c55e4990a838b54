"""Deterministic UIDs of result objects.

Every UID of a result is derived from what identifies the result: the job, the source series, the
pipeline name and version, the kind of output and an optional item (a lesion index, say). Encoding
the same job again gives the same Series and SOP Instance UIDs, so a re-export replaces instead of
duplicating; another job or pipeline version gives new ones.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydicom.uid import PYDICOM_ROOT_UID, UID, generate_uid

# Root under which result UIDs are made; pydicom's registered root keeps them globally unique.
UID_PREFIX = PYDICOM_ROOT_UID


class OutputKind(StrEnum):
    """What a derived UID identifies."""

    SEG_SERIES = "seg-series"
    SEG_INSTANCE = "seg-instance"
    SR_SERIES = "sr-series"
    SR_INSTANCE = "sr-instance"
    KEY_IMAGE_SERIES = "key-image-series"
    KEY_IMAGE_INSTANCE = "key-image-instance"
    TRACKING = "tracking"


def result_uid(
    job_id: int,
    source_series_uid: str,
    pipeline_name: str,
    pipeline_version: str,
    kind: OutputKind,
    item: str | int | None = None,
) -> UID:
    """The UID of one output of one job; the same arguments always give the same UID."""
    parts = [
        "result",
        str(job_id),
        source_series_uid,
        pipeline_name,
        pipeline_version,
        kind.value,
        "" if item is None else str(item),
    ]
    return _derive(parts)


def device_uid(pipeline_name: str, pipeline_version: str) -> UID:
    """The UID of the algorithm as an SR device observer: one per pipeline version, not per job."""
    return _derive(["device", pipeline_name, pipeline_version])


def _derive(parts: list[str]) -> UID:
    # generate_uid hashes the concatenation of its sources; one JSON text keeps the parts apart
    # ("1" + "23" and "12" + "3" must not collide).
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[json.dumps(parts)])
