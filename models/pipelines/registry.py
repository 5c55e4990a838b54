"""Pipelines by name: the shipped reference pipeline, and the TorchScript models and MONAI
bundles found in a models folder.

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


@dataclass(frozen=True)
class _UserModel:
    kind: str  # "torchscript" or "monai-bundle"
    path: Path
    version: str


def _user_models(models_dir: Path | None) -> dict[str, _UserModel]:
    """TorchScript models (`<name>.pt` + `<name>.json`) and MONAI bundles (a folder each)."""
    if models_dir is None or not models_dir.is_dir():
        return {}
    from models.pipelines.monai_bundle_layout import bundle_version, is_bundle

    found = {}
    for description in sorted(models_dir.glob("*.json")):
        model = description.with_suffix(".pt")
        if model.exists():
            spec = json.loads(description.read_text())
            found[str(spec["name"])] = _UserModel("torchscript", model, str(spec["version"]))
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and is_bundle(p)):
        found[folder.name] = _UserModel("monai-bundle", folder, bundle_version(folder))
    return found


def available(models_dir: Path | None = None) -> list[PipelineInfo]:
    infos = [info() for _, info in BUILTIN.values()]
    for name, model in _user_models(models_dir).items():
        infos.append(PipelineInfo(name, model.version, model.kind, str(model.path)))
    return infos


@cache
def get_pipeline(name: str, models_dir: Path | None = None) -> Pipeline:
    """The pipeline called `name`, built on first use and cached for the process."""
    if name in BUILTIN:
        return BUILTIN[name][0]()
    model = _user_models(models_dir).get(name)
    if model is not None and model.kind == "torchscript":
        from models.pipelines.torchscript import TorchScriptPipeline

        return TorchScriptPipeline(model.path)
    if model is not None:
        from models.pipelines.monai_bundle import MonaiBundlePipeline

        return MonaiBundlePipeline(model.path)
    known = [info.name for info in available(models_dir)]
    raise PipelineNotFoundError(f"no pipeline named {name!r}; known: {', '.join(known)}")
