"""A MONAI bundle laid out as the model zoo's, whose network is one 1x1x1 convolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

DENSE_HU = -160.0  # the test network's boundary: scaled voxel 0.6 in [-1000, 400]

PREPROCESSING = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
    {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
    {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
    {
        "_target_": "ScaleIntensityRanged",
        "keys": "image",
        "a_min": -1000,
        "a_max": 400,
        "b_min": 0.0,
        "b_max": 1.0,
        "clip": True,
    },
    {"_target_": "EnsureTyped", "keys": "image"},
]
POSTPROCESSING = [
    {"_target_": "Activationsd", "keys": "pred", "softmax": True},
    {
        "_target_": "Invertd",
        "keys": "pred",
        "transform": "@preprocessing",
        "orig_keys": "image",
        "nearest_interp": False,
        "to_tensor": True,
    },
    {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
    {"_target_": "SaveImaged", "keys": "pred", "output_dir": "$@bundle_root + '/eval'"},
]


def write_bundle(folder: Path, postprocessing: list[dict[str, Any]] = POSTPROCESSING) -> None:
    """A zoo-style bundle whose network is one 1x1x1 convolution: class 1 above DENSE_HU."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    metadata = {
        "version": "0.2.0",
        "name": "Dense tissue test bundle",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1}},
            "outputs": {"pred": {"channel_def": {"0": "background", "1": "dense tissue"}}},
        },
    }
    inference = {
        "bundle_root": ".",
        "network_def": {
            "_target_": "torch.nn.Conv3d",
            "in_channels": 1,
            "out_channels": 2,
            "kernel_size": 1,
        },
        "preprocessing": {"_target_": "Compose", "transforms": PREPROCESSING},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": postprocessing},
    }
    (folder / "configs/metadata.json").write_text(json.dumps(metadata))
    (folder / "configs/inference.json").write_text(json.dumps(inference))
    weights = {
        "weight": torch.tensor([-20.0, 20.0]).reshape(2, 1, 1, 1, 1),
        "bias": torch.tensor([12.0, -12.0]),
    }
    torch.save(weights, folder / "models/model.pt")
