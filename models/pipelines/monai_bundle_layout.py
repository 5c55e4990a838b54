"""Where a MONAI bundle keeps what the registry reads, without importing torch or MONAI."""

from __future__ import annotations

import json
from pathlib import Path

METADATA = Path("configs/metadata.json")
INFERENCE_CONFIGS = (Path("configs/inference.json"), Path("configs/inference.yaml"))


def is_bundle(folder: Path) -> bool:
    """A folder with a bundle's metadata and an inference configuration."""
    return (folder / METADATA).is_file() and any((folder / c).is_file() for c in INFERENCE_CONFIGS)


def bundle_version(folder: Path) -> str:
    return str(json.loads((folder / METADATA).read_text()).get("version", "unknown"))
