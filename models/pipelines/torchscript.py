"""Bring-your-own segmentation model: a TorchScript file plus a JSON description beside it.

`<name>.pt` takes (1, 1, z, y, x) scaled voxels and returns (1, classes, z, y, x) logits.
`<name>.json`: {"name", "version", "spacing": [z, y, x] mm, "hu_window": [low, high],
"roi": [z, y, x], "segments": [{"label", "name", "category": [value, scheme, meaning],
"type": [value, scheme, meaning]}]}. Voxels are clipped to hu_window and scaled to [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models.findings import Findings
from models.lesions import measure
from models.orientation import canonical_flips
from models.pipelines.inference import Runtime, pick_runtime
from models.pipelines.segmentation import coded_segments, lesions_of
from models.preprocess import resample, working_shape
from models.volume import Volume


class TorchScriptPipeline:
    def __init__(self, model_path: Path, runtime: Runtime | None = None) -> None:
        spec = json.loads(model_path.with_suffix(".json").read_text())
        self.name = str(spec["name"])
        self.version = str(spec["version"])
        self.description = str(spec.get("description", f"TorchScript model {model_path.name}"))
        self.spacing = tuple(float(v) for v in spec["spacing"])
        self.hu_window = (float(spec["hu_window"][0]), float(spec["hu_window"][1]))
        self.roi = tuple(int(v) for v in spec.get("roi", (96, 96, 96)))
        self.segments = coded_segments(spec["segments"])
        self.runtime = runtime or pick_runtime(cpu_bf16=False)
        self.model = torch.jit.load(str(model_path), map_location=self.runtime.device).eval()

    def run(self, volume: Volume) -> Findings:
        from monai.inferers import sliding_window_inference

        flips = canonical_flips(volume)
        hu = torch.from_numpy(np.ascontiguousarray(flips.apply(volume.voxels), dtype=np.float32))
        low, high = self.hu_window
        image = resample(hu, working_shape(hu.shape, volume.spacing, self.spacing))
        image = ((image.clamp(low, high) - low) / (high - low))[None, None].to(self.runtime.device)
        with torch.inference_mode():
            logits = sliding_window_inference(image, self.roi, 1, self.model, overlap=0.25)
        assert isinstance(logits, torch.Tensor)
        labels = (
            resample(logits.argmax(1)[0].float().cpu(), hu.shape, mode="nearest")
            .to(torch.uint8)
            .numpy()
        )
        label_map = np.ascontiguousarray(flips.undo(labels))
        lesion_map = lesions_of(label_map)
        lesions = measure(volume, lesion_map, {})
        return Findings(self.name, self.version, label_map, lesion_map, self.segments, lesions)
