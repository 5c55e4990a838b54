"""The reference lung-nodule pipeline: lung mask, U-Net detector and blob filter, candidate
classifier, lesions.

run(volume): orient -> coarse lung mask -> crop to the lungs -> resample to the working grid ->
sliding-window U-Net -> candidates (threshold, size, inside the lungs) plus round blobs the U-Net
missed (those a cheap prefilter passes) -> classifier confidence -> each kept one drawn on the
original grid (the U-Net's probability, or a blob's half-maximum outline, then redrawn at half
maximum) -> measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from models.findings import ABNORMAL_STRUCTURE, LUNG, NODULE, Findings, SegmentDescription
from models.lesions import measure
from models.lungmask import lung_mask
from models.orientation import canonical_flips
from models.pipelines.blob_prefilter import BlobPrefilter
from models.pipelines.blobs import BlobGates, find_blobs
from models.pipelines.candidates import (
    BLOB_LABEL,
    Candidate,
    blob_candidates,
    classifier_inputs,
    find_candidates,
)
from models.pipelines.half_maximum import half_maximum_mask, refine_outline
from models.pipelines.inference import (
    Runtime,
    autocast,
    optimise_for_cpu,
    pick_runtime,
    prepare,
    sliding_window_probability,
)
from models.pipelines.symmetry import mean_over_views
from models.preprocess import resample, to_working_grid
from models.reference import WEIGHTS_DIR
from models.reference.network import (
    DETECTOR_OVERLAP,
    DETECTOR_WINDOW,
    WORKING_SPACING,
    build_detector,
    load_classifier,
    load_weights,
)
from models.volume import Volume

SEGMENT = SegmentDescription(1, "Lung nodule", ABNORMAL_STRUCTURE, NODULE, LUNG)
LUNG_MASK_STEP_MM = 2.0
CROP_MARGIN_MM = 10.0
CLASSIFIER_BATCH = 8
"""Candidates scored at a time: on 2 cores (an AVX2 VM) 195 blob candidates took 1.8-1.9 s in
batches of 8 against 2.3-2.6 s in one batch of 195, whose activations alone (400 MB a layer)
also raised the pipeline's peak memory."""


VIEW_GATE = 0.5
"""A candidate the classifier scores at least this in its own view is scored again as the mean
over four symmetry views of its cube (`mean_over_views`), and that mean is its confidence: the
thresholds lie above the gate, and the few candidates over it (7.5 a validation phantom) keep
the extra time small."""


@dataclass(frozen=True)
class Thresholds:
    detector: float = 0.5
    min_volume_mm3: float = 6.0
    classifier: float = 0.5  # for detector candidates
    blob_classifier: float = 1.0  # for blob candidates; 1.0 keeps none
    blob_response: float = BlobGates.response
    blob_roundness: float = BlobGates.roundness

    @property
    def blob_gates(self) -> BlobGates:
        return BlobGates(self.blob_response, self.blob_roundness)


@dataclass(frozen=True)
class WorkingView:
    """The lungs' bounding box on the canonical original grid and the same region resampled."""

    box: tuple[slice, slice, slice]
    image: torch.Tensor
    lungs: np.ndarray


@dataclass(frozen=True)
class Proposals:
    """Every candidate of one working view with its classifier confidence, before thresholds."""

    probability: torch.Tensor
    components: np.ndarray  # the detector candidates' label array
    detector: list[tuple[Candidate, float]]
    blobs: list[tuple[Candidate, float]]


class LungNodulePipeline:
    name = "lung-nodule-reference"
    description = (
        "Reference 3D U-Net and blob filter + candidate classifier, trained on synthetic chest CT"
        " phantoms"
    )

    def __init__(
        self,
        weights_dir: Path = WEIGHTS_DIR,
        runtime: Runtime | None = None,
        *,
        blob_prefilter: bool = True,
    ) -> None:
        """`blob_prefilter=False` gives every blob to the classifier, as when fitting the
        prefilter, even where the weights' metadata has one."""
        metadata = json.loads((weights_dir / "reference.json").read_text())
        self.version = str(metadata["version"])
        self.thresholds = Thresholds(**metadata.get("thresholds", {}))
        prefilter = metadata.get("blob_prefilter") if blob_prefilter else None
        self.blob_prefilter = BlobPrefilter.from_json(prefilter) if prefilter else None
        self.runtime = runtime or pick_runtime()
        weights = load_weights(build_detector(), weights_dir / "detector.pt")
        detector = prepare(weights, self.runtime)
        self.detector = optimise_for_cpu(detector, self.runtime, (1, 1, *DETECTOR_WINDOW))
        self.blob_classifier = self._optional_classifier(weights_dir / "blob_classifier.pt")
        own = self._optional_classifier(weights_dir / "classifier.pt")
        # Since 0.5.1 the blob candidates' classifier (trained on both kinds) judges the
        # detector's candidates too, with their own threshold: the weights have no classifier.pt.
        self.classifier = own if own is not None else self.blob_classifier

    def _optional_classifier(self, path: Path) -> nn.Module | None:
        if not path.exists():
            return None
        return prepare(load_classifier(path), self.runtime)

    def run(self, volume: Volume) -> Findings:
        flips = canonical_flips(volume)
        hu = flips.apply(volume.voxels)
        view = working_view(hu, volume.spacing)
        lesion_map = np.zeros(volume.voxels.shape, dtype=np.int32)
        canonical_lesions = flips.apply(lesion_map)  # a view: painting it fills lesion_map
        confidences: dict[int, float] = {}
        if view is not None:
            proposals = self.propose(view)
            kept = [(c, s) for c, s in proposals.detector if s >= self.thresholds.classifier]
            kept += [(c, s) for c, s in proposals.blobs if s >= self.thresholds.blob_classifier]
            confidences = paint_lesions(
                canonical_lesions, view.box, proposals.probability, kept, hu, volume.spacing
            )
        lesions = measure(volume, lesion_map, confidences)
        return Findings(
            pipeline_name=self.name,
            pipeline_version=self.version,
            label_map=(lesion_map > 0).astype(np.uint8),
            lesion_map=lesion_map,
            segments=(SEGMENT,),
            lesions=lesions,
            scores={
                "nodule_count": float(len(lesions)),
                "max_confidence": max(confidences.values(), default=0.0),
            },
        )

    def propose(self, view: WorkingView) -> Proposals:
        """Every candidate of both kinds in `view` with its confidence, before thresholds."""
        probability = sliding_window_probability(
            self.detector, view.image, self.runtime, DETECTOR_WINDOW, DETECTOR_OVERLAP
        )
        candidates, components = find_candidates(
            probability.numpy(),
            view.lungs,
            WORKING_SPACING,
            self.thresholds.detector,
            self.thresholds.min_volume_mm3,
        )
        detector = self.score(view.image, probability, candidates, self.classifier)
        blobs: list[tuple[Candidate, float]] = []
        if self.blob_classifier is not None:
            image, probabilities = view.image.numpy(), probability.numpy()
            found = find_blobs(image, view.lungs, self.thresholds.blob_gates)
            if self.blob_prefilter is not None:
                found = self.blob_prefilter.select(found, image, probabilities)
            small = blob_candidates(found, probabilities, components)
            blobs = self.score(view.image, probability, small, self.blob_classifier)
        return Proposals(probability, components, detector, blobs)

    def score(
        self,
        image: torch.Tensor,
        probability: torch.Tensor,
        candidates: list[Candidate],
        classifier: nn.Module | None,
    ) -> list[tuple[Candidate, float]]:
        """Each candidate with its classifier confidence (the mean over four symmetry views where
        one view gives VIEW_GATE or more), or the detector's peak probability without one."""
        if classifier is None or not candidates:
            return [(c, c.max_probability) for c in candidates]
        inputs = classifier_inputs(image, probability, candidates).to(self.runtime.device)

        def classify(cubes: torch.Tensor) -> torch.Tensor:
            cubes = cubes.float().contiguous(memory_format=torch.channels_last_3d)
            with torch.inference_mode(), autocast(self.runtime):
                logits = torch.cat([classifier(batch) for batch in cubes.split(CLASSIFIER_BATCH)])
            return torch.sigmoid(logits.float())

        confidences = classify(inputs)
        likely = confidences >= VIEW_GATE
        if likely.any():
            confidences[likely] = mean_over_views(classify, inputs[likely])
        return [(c, float(v)) for c, v in zip(candidates, confidences.cpu(), strict=True)]


def working_view(hu: np.ndarray, spacing: tuple[float, float, float]) -> WorkingView | None:
    """Crop to the lungs (found on a ~2 mm grid) and resample that crop to the working grid."""
    step = np.maximum(np.round(LUNG_MASK_STEP_MM / np.asarray(spacing)), 1).astype(int)
    coarse = lung_mask(hu[:: step[0], :: step[1], :: step[2]], tuple(np.asarray(spacing) * step))
    if not coarse.any():
        return None
    found = np.argwhere(coarse)
    margin = np.ceil(CROP_MARGIN_MM / np.asarray(spacing)).astype(int)
    low = np.maximum(found.min(0) * step - margin, 0)
    high = np.minimum((found.max(0) + 1) * step + margin, hu.shape)
    box = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
    image = to_working_grid(hu[box], spacing, WORKING_SPACING)
    coarse_box = tuple(
        slice(lo // s, -(-hi // s)) for lo, hi, s in zip(low, high, step, strict=True)
    )
    lungs = resample(torch.from_numpy(coarse[coarse_box].astype(np.float32)), image.shape) >= 0.5
    lungs_np = ndimage.binary_dilation(lungs.numpy(), iterations=3)
    return WorkingView(box, image, lungs_np)


def paint_lesions(
    lesion_map: np.ndarray,
    box: tuple[slice, slice, slice],
    probability: torch.Tensor,
    kept: list[tuple[Candidate, float]],
    hu: np.ndarray,
    spacing: tuple[float, float, float],
) -> dict[int, float]:
    """Write each kept candidate, on the original grid, into `lesion_map`: first outlined as
    a detector component by its resampled probability, a blob by its half-maximum outline,
    then redrawn at half maximum from there (`refine_outline`)."""
    crop_shape = tuple(part.stop - part.start for part in box)
    confidences: dict[int, float] = {}
    for candidate, confidence in sorted(kept, key=lambda item: -item[0].max_probability):
        native_box: tuple[slice, ...]
        if candidate.label == BLOB_LABEL:
            ratio = [n / w for n, w in zip(crop_shape, probability.shape, strict=True)]
            centre = [(c + 0.5) * r - 0.5 for c, r in zip(candidate.centroid, ratio, strict=True)]
            native_box, mask = half_maximum_mask(hu[box], centre, candidate.radius_mm, spacing)
        else:
            native_box, mask = _native_mask(probability, crop_shape, candidate)
        if not mask.any():
            continue
        native_box, mask = refine_outline(hu[box], native_box, mask, spacing)
        target = lesion_map[box][native_box]
        free = mask & (target == 0)
        if not free.any():  # all of it drawn already, by a likelier lesion
            continue
        index = len(confidences) + 1
        target[free] = index
        confidences[index] = confidence
    return confidences


def _native_mask(
    probability: torch.Tensor, crop_shape: tuple[int, ...], candidate: Candidate
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The candidate's component on the original grid: trilinear probability >= 0.5 there."""
    ratio = [n / w for n, w in zip(crop_shape, probability.shape, strict=True)]
    low = [
        max(int(np.floor((part.start - 1) * r)), 0)
        for part, r in zip(candidate.box, ratio, strict=True)
    ]
    high = [
        min(int(np.ceil((part.stop + 1) * r)), n)
        for part, r, n in zip(candidate.box, ratio, crop_shape, strict=True)
    ]
    axes = [
        (torch.arange(lo, hi, dtype=torch.float32) + 0.5) / n * 2 - 1
        for lo, hi, n in zip(low, high, crop_shape, strict=True)
    ]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    grid = torch.stack([x, y, z], dim=-1)[None]
    local = F.grid_sample(probability[None, None], grid, mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
    level = min(0.5, 0.5 * float(local.max()))
    labels, _ = ndimage.label(local >= level)
    peak = tuple(
        int(np.clip(round((p + 0.5) * r - 0.5) - lo, 0, hi - lo - 1))
        for p, r, lo, hi in zip(candidate.peak, ratio, low, high, strict=True)
    )
    chosen = labels[peak] or int(np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    native_box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    return native_box, labels == chosen
