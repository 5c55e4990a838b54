"""Pipelines by name: the shipped reference pipeline and TorchScript models found in a folder.

Each pipeline is built (weights loaded) once per process and then reused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from models.errors import PipelineNotFoundError
from models.pipelines.base import Pipeline
from models.reference import WEIGHTS_DIR


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    version: str
    kind: str
    source: str


def _reference() -> Pipeline:
    from models.pipelines.lung_nodule import LungNodulePipeline

    return LungNodulePipeline()


def _reference_info() -> PipelineInfo:
    """Read from the weights' description, without importing torch (the agent lists models)."""
    metadata = json.loads((WEIGHTS_DIR / "reference.json").read_text())
    return PipelineInfo(
        str(metadata["name"]), str(metadata["version"]), "reference", str(WEIGHTS_DIR)
    )


BUILTIN: dict[str, tuple[Callable[[], Pipeline], Callable[[], PipelineInfo]]] = {
    "lung-nodule-reference": (_reference, _reference_info),
}


def _torchscript_models(models_dir: Path | None) -> dict[str, Path]:
    if models_dir is None or not models_dir.is_dir():
        return {}
    found = {}
    for description in sorted(models_dir.glob("*.json")):
        model = description.with_suffix(".pt")
        if model.exists():
            found[str(json.loads(description.read_text())["name"])] = model
    return found


def available(models_dir: Path | None = None) -> list[PipelineInfo]:
    infos = [info() for _, info in BUILTIN.values()]
    for name, path in _torchscript_models(models_dir).items():
        version = json.loads(path.with_suffix(".json").read_text())["version"]
        infos.append(PipelineInfo(name, str(version), "torchscript", str(path)))
    return infos


@cache
def get_pipeline(name: str, models_dir: Path | None = None) -> Pipeline:
    """The pipeline called `name`, built on first use and cached for the process."""
    if name in BUILTIN:
        return BUILTIN[name][0]()
    models = _torchscript_models(models_dir)
    if name in models:
        from models.pipelines.torchscript import TorchScriptPipeline

        return TorchScriptPipeline(models[name])
    known = [info.name for info in available(models_dir)]
    raise PipelineNotFoundError(f"no pipeline named {name!r}; known: {', '.join(known)}")
