"""DIMSE status codes as named constants, and the one place errors become statuses."""

from __future__ import annotations

from enum import IntEnum

from agent.errors import SopClassMismatchError, SpoolError, UnparsableInstanceError


class Status(IntEnum):
    """DIMSE response statuses the agent sends (PS3.4 B.2.3, PS3.7 C)."""

    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000


def status_for(exc: Exception) -> Status:
    """The failure status a C-STORE answers with when receiving raised `exc`."""
    match exc:
        case SopClassMismatchError():
            return Status.DATASET_DOES_NOT_MATCH_SOP_CLASS
        case UnparsableInstanceError():
            return Status.CANNOT_UNDERSTAND
        case SpoolError():
            return Status.OUT_OF_RESOURCES
        case _:
            return Status.PROCESSING_FAILURE
