"""Bring-your-own model: a TorchScript file + JSON description, found by the registry and run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.errors import PipelineNotFoundError
from models.pipelines.registry import available, get_pipeline
from models.volume import Volume


class DenseTissue(nn.Module):
    """Two-class logits: class 1 where the scaled voxel is above 0.6 (HU > -160 in [-1000, 400])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.6 - x, x - 0.6], dim=1) * 20.0


def _install(models_dir: Path) -> None:
    models_dir.mkdir()
    torch.jit.script(DenseTissue()).save(str(models_dir / "dense.pt"))
    description = {
        "name": "dense-tissue-test",
        "version": "0.1",
        "spacing": [1.0, 1.0, 1.0],
        "hu_window": [-1000, 400],
        "roi": [32, 32, 32],
        "segments": [
            {
                "label": 1,
                "name": "Dense tissue",
                "category": ["85756007", "SCT", "Tissue"],
                "type": ["85756007", "SCT", "Tissue"],
            }
        ],
    }
    (models_dir / "dense.json").write_text(json.dumps(description))


def test_torchscript_model_is_listed_and_segments_on_the_original_grid(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    _install(models_dir)
    voxels = np.full((20, 40, 40), -900.0, dtype=np.float32)
    voxels[8:13, 10:20, 10:20] = 50.0
    voxels[5:7, 30:34, 28:36] = 80.0
    volume = Volume(
        voxels=voxels,
        spacing=(2.0, 0.8, 0.8),
        origin=(0.0, 0.0, 0.0),
        row_cosine=(1.0, 0.0, 0.0),
        column_cosine=(0.0, 1.0, 0.0),
        slice_cosine=(0.0, 0.0, 1.0),
        source_sop_instance_uids=tuple(str(k) for k in range(20)),
    )

    assert "dense-tissue-test" in [info.name for info in available(models_dir)]
    findings = get_pipeline("dense-tissue-test", models_dir).run(volume)

    assert findings.pipeline_version == "0.1"
    assert findings.label_map.shape == voxels.shape
    agreement = (findings.label_map == 1) == (voxels > -160)
    assert agreement.mean() > 0.98
    assert len(findings.lesions) == 2
    assert sorted(round(lesion.mean_hu) for lesion in findings.lesions) == [50, 80]


def test_unknown_pipeline_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PipelineNotFoundError, match="lung-nodule-reference"):
        get_pipeline("no-such-model", tmp_path)
