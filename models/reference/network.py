"""The reference networks: a MONAI 3D U-Net detector/segmenter and a small candidate classifier."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from monai.networks.nets import UNet
from torch import nn

WORKING_SPACING = (1.0, 1.0, 1.0)
DETECTOR_PATCH = 64
DETECTOR_WINDOW = (96, 96, 96)
"""Sliding-window size at inference (z, y, x voxels). The U-Net's instance normalisation takes
its statistics from the whole window, so what it sees depends on the window, not only on the
voxels around a nodule: trained on 64-voxel patches, it missed large ground-glass nodules in
96x160x160 windows (release 0.5.1 and before) that 64- and 96-voxel windows find (session 12)."""
DETECTOR_OVERLAP = 0.125
"""How much neighbouring sliding windows overlap, as a fraction of the window. 0.25 until
release 0.5.3; at 0.125 the 512x512x300 benchmark runs 24 windows instead of 32, and the 80
validation phantoms gave 181 nodules of 247 at 0.34 false positives per scan against 182 at 0.40
(fp32, the same thresholds; session 15, docs/models.md)."""


def build_detector() -> nn.Module:
    """Two-class 3D U-Net (background, nodule), 2.5 M parameters, 16x total down-sampling."""
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        channels=(16, 32, 64, 128, 256),
        strides=(2, 2, 2, 2),
        num_res_units=1,
    )


class CandidateClassifier(nn.Module):
    """Scores a 32-voxel cube (image and detector probability) around a candidate: nodule or not.

    The head either averages the last features over the cube (`spatial=False`, the detector
    candidates' classifier until release 0.5.0) or keeps where they are (`spatial=True`, a
    flattened 4^3 map: the blob candidates' classifier since release 0.5.0, which on validation
    phantoms found 6 more nodules at fewer false positives, trained on the same candidates for
    the same steps; since 0.5.1 it scores the detector's candidates too).
    `load_classifier` builds the head that a weight file holds.
    """

    def __init__(self, spatial: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [2, 16, 32, 64]
        for low, high in itertools.pairwise(channels):
            layers += [
                nn.Conv3d(low, high, 3, padding=1),
                nn.BatchNorm3d(high),
                nn.ReLU(inplace=True),
                nn.Conv3d(high, high, 3, padding=1),
                nn.BatchNorm3d(high),
                nn.ReLU(inplace=True),
                nn.MaxPool3d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.head = _spatial_head() if spatial else _pooled_head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))[:, 0]
        return logits


def _pooled_head() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(64, 1))


SPATIAL_HEAD_KEY = "head.4.weight"  # the spatial head's last layer; the pooled head has 3


def _spatial_head() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64 * 4 * 4 * 4, 64),
        nn.ReLU(inplace=True),
        nn.Linear(64, 1),
    )


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Half-precision copy of the floating-point tensors keeps the committed files small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compact = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(compact, path)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load weights saved by `save_weights` into `model` as float32."""
    model.load_state_dict(_float_state(path))
    return model


def load_classifier(path: Path) -> CandidateClassifier:
    """A `CandidateClassifier` saved by `save_weights`, with the head its weights have."""
    state = _float_state(path)
    model = CandidateClassifier(spatial=SPATIAL_HEAD_KEY in state)
    model.load_state_dict(state)
    return model


def _float_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
