"""Bring-your-own model as a MONAI bundle: one folder, laid out as the MONAI model zoo does.

`configs/metadata.json` (its `version`; the output channels' names in
`network_data_format.outputs.pred.channel_def`), `configs/inference.json` (or `.yaml`) with
`network_def`, `preprocessing`, `inferer` and `postprocessing`, and the weights as
`models/model.pt` (a state dict of `network_def`) or `models/model.ts` (TorchScript). The folder's
name is the pipeline's name.

The bundle's own transforms run with two changes, made to its configuration before anything is
built: the volume goes in as the image its `LoadImage(d)` would have produced (a channel-less
MetaTensor with a RAS affine), so the loader is left out, and so is `SaveImage(d)` (results leave
as DICOM). The postprocessing must bring the prediction back onto the input grid, as the zoo's
bundles do with `Invertd`; where more than one channel is left, the label is the argmax over
channels.

Segments: `configs/dicom_segments.json` when present (`[{"label", "name", "category": [value,
scheme, meaning], "type": [...]}]`, as for TorchScript models), else one per non-background
channel of `channel_def`, coded as SNOMED CT "Tissue".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from torch import nn

from models.errors import BundleError
from models.findings import Findings, SegmentDescription
from models.lesions import measure
from models.pipelines.inference import Runtime, autocast, pick_runtime
from models.pipelines.monai_bundle_layout import INFERENCE_CONFIGS, METADATA
from models.pipelines.segmentation import TISSUE, coded_segments, lesions_of
from models.volume import Volume

log = logging.getLogger(__name__)
SEGMENTS = Path("configs/dicom_segments.json")
SKIPPED_TRANSFORMS = ("LoadImage", "LoadImaged", "SaveImage", "SaveImaged")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class MonaiBundlePipeline:
    def __init__(self, folder: Path, runtime: Runtime | None = None) -> None:
        metadata = json.loads((folder / METADATA).read_text())
        self.name = folder.name
        self.version = str(metadata.get("version", "unknown"))
        self.description = str(metadata.get("name") or f"MONAI bundle {folder.name}")
        self.runtime = runtime or pick_runtime(cpu_bf16=False)
        parser = _parser(folder, metadata)
        self.network = _network(folder, parser).to(self.runtime.device).eval()
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.inferer = parser.get_parsed_content("inferer")
        self.postprocessing = parser.get_parsed_content("postprocessing")
        inputs = metadata.get("network_data_format", {}).get("inputs", {"image": {}})
        self.image_key = str(next(iter(inputs)))
        self.segments = _segments(folder, metadata)

    def run(self, volume: Volume) -> Findings:
        data = self.preprocessing({self.image_key: as_loaded_image(volume)})
        batch = data[self.image_key][None].to(self.runtime.device)
        with torch.inference_mode(), autocast(self.runtime):
            prediction = self.inferer(batch, self.network)
        data["pred"] = prediction[0].float().cpu()
        prediction = self.postprocessing(data)["pred"]
        label_map = _labels(prediction, volume.shape)
        lesion_map = lesions_of(label_map)
        lesions = measure(volume, lesion_map, {})
        return Findings(self.name, self.version, label_map, lesion_map, self.segments, lesions)


def as_loaded_image(volume: Volume) -> MetaTensor:
    """The volume as MONAI's image loaders give a file: (column, row, slice) voxels, no channel,
    an affine from those indices to RAS patient coordinates (mm)."""
    affine = LPS_TO_RAS @ volume.affine()[:, [2, 1, 0, 3]]
    voxels = torch.from_numpy(np.ascontiguousarray(volume.voxels.transpose(2, 1, 0)))
    meta = {
        "original_channel_dim": "no_channel",
        "spatial_shape": np.array(voxels.shape),
        "original_affine": affine.copy(),
        "space": "RAS",
        "filename_or_obj": volume.series_instance_uid or "volume",
    }
    return MetaTensor(voxels.float(), affine=torch.from_numpy(affine), meta=meta)


def _parser(folder: Path, metadata: dict[str, Any]) -> ConfigParser:
    config = next(folder / c for c in INFERENCE_CONFIGS if (folder / c).is_file())
    parser = ConfigParser()
    parser.read_meta(metadata)
    parser.read_config(str(config))
    parser["bundle_root"] = str(folder)
    for key in ("preprocessing", "postprocessing"):
        _drop_loaders_and_writers(parser, key)
    missing = [key for key in ("preprocessing", "inferer", "postprocessing") if key not in parser]
    if missing:
        raise BundleError(f"{config} has no {', '.join(missing)}")
    return parser


def _network(folder: Path, parser: ConfigParser) -> nn.Module:
    state_file, script_file = folder / "models/model.pt", folder / "models/model.ts"
    if state_file.is_file() and "network_def" in parser:
        network: nn.Module = parser.get_parsed_content("network_def")
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        network.load_state_dict(state.get("model", state))
        return network
    if script_file.is_file():
        scripted: nn.Module = torch.jit.load(str(script_file), map_location="cpu")
        return scripted
    raise BundleError(
        f"{folder} has neither models/model.pt with a network_def nor models/model.ts"
    )


def _drop_loaders_and_writers(parser: ConfigParser, key: str) -> None:
    """Take the loaders and writers out of a Compose's configured transforms, before anything is
    built (a writer's backend may not even be installed)."""
    path = f"{key}#transforms"
    if path not in parser:
        return
    kept = [item for item in parser[path] if _target(parser, item) not in SKIPPED_TRANSFORMS]
    parser[path] = kept


def _target(parser: ConfigParser, item: Any) -> str:
    """The class name a configured transform builds (through one `@reference`), else ''."""
    if isinstance(item, str) and item.startswith("@") and item[1:] in parser:
        item = parser[item[1:]]
    target = item.get("_target_", "") if isinstance(item, dict) else ""
    return str(target).rsplit(".", 1)[-1]


def _labels(prediction: torch.Tensor, shape: tuple[int, int, int]) -> np.ndarray:
    """(slice, row, column) labels from the postprocessed (channels, column, row, slice) output."""
    values = torch.as_tensor(prediction).detach().cpu()
    labels = values.argmax(0) if values.shape[0] > 1 else values[0].round()
    if tuple(labels.shape[::-1]) != shape:
        raise BundleError(
            f"the bundle's output has shape {tuple(labels.shape)} where the input had"
            f" {shape[::-1]}: its postprocessing must invert the preprocessing (Invertd)"
        )
    return np.ascontiguousarray(labels.numpy().astype(np.uint8).transpose(2, 1, 0))


def _segments(folder: Path, metadata: dict[str, Any]) -> tuple[SegmentDescription, ...]:
    if (folder / SEGMENTS).is_file():
        return coded_segments(json.loads((folder / SEGMENTS).read_text()))
    channels = (
        metadata.get("network_data_format", {})
        .get("outputs", {})
        .get("pred", {})
        .get("channel_def", {"0": "background", "1": "foreground"})
    )
    log.warning("%s: no %s, its segments are coded as %s", folder.name, SEGMENTS, TISSUE.meaning)
    return tuple(
        SegmentDescription(int(label), str(name), TISSUE, TISSUE)
        for label, name in sorted(channels.items(), key=lambda item: int(item[0]))
        if int(label) > 0
    )
