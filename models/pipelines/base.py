"""What every pipeline offers, whatever its model format."""

from __future__ import annotations

from typing import Protocol

from models.findings import Findings
from models.volume import Volume

NOT_FOR_DIAGNOSTIC_USE = "AI result - not for diagnostic use"


class Pipeline(Protocol):
    name: str
    version: str
    description: str

    def run(self, volume: Volume) -> Findings: ...
