"""A synthetic chest CT study, sent to the node as a scanner would send it: `dicom-agent demo`.

The study is a phantom from `models.reference` (body, lungs, vessels, ribs and a few nodules;
numpy only, no torch), written as real DICOM files and stored by C-STORE to the node's own
AE title, host and port. Its UIDs derive from the seed: sending a seed again is an identical
re-send, another seed is a new study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.config import Settings
from agent.dimse.scu import SendResult, send_files
from models.reference.dicom_series import SeriesIdentity, write_series
from models.reference.phantom import Geometry, Nodule, generate

DEMO_GEOMETRY = Geometry(matrix=256, pixel_spacing=1.4, slice_thickness=2.5, slices=120)
"""300 mm of chest in 120 slices of 256 x 256: quick to send and to run."""
ANY_ADDRESS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class DemoStudy:
    files: list[Path]
    nodules: tuple[Nodule, ...]


def write_demo_study(directory: Path, seed: int, nodule_count: int) -> DemoStudy:
    """The phantom `seed` with `nodule_count` nodules as one CT series in `directory`."""
    phantom = generate(seed, DEMO_GEOMETRY, nodule_count=nodule_count)
    identity = SeriesIdentity(patient_id=f"DEMO{seed}", accession_number=f"DEMO{seed}")
    return DemoStudy(write_series(phantom, directory, identity), phantom.nodules)


def send_to_node(settings: Settings, files: list[Path], calling_ae: str) -> list[SendResult]:
    """C-STORE `files` to this node's listener (loopback where it listens on every address)."""
    host = "127.0.0.1" if settings.host in ANY_ADDRESS else settings.host
    return send_files(files, settings.ae_title, host, settings.port, calling_ae)


def describe(nodule: Nodule) -> str:
    return f"{nodule.diameter_mm:.1f} mm {nodule.kind} ({nodule.placement})"
