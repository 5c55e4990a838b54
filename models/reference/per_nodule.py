"""Where the reference pipeline finds or misses each phantom nodule: `python -m
models.reference.per_nodule --first-seed 4000000 --cases 60`.

For every nodule: the detector's peak probability inside it, the confidence of every detector
candidate that overlaps it and of every blob candidate centred in it, and whether one of them
reaches its kind's threshold. A candidate-level count, for finding out why nodules are missed:
the pipeline's own figures (`models.reference.evaluate`) come from the lesions it draws.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from models.orientation import Flips, canonical_flips
from models.pipelines.lung_nodule import LungNodulePipeline, Proposals, WorkingView, working_view
from models.preprocess import resample
from models.reference.dicom_series import phantom_volume
from models.reference.metrics import SIZE_BANDS
from models.reference.phantom import Phantom, generate


@dataclass(frozen=True)
class NoduleReport:
    seed: int
    diameter_mm: float
    kind: str
    placement: str
    peak_probability: float  # the detector's, inside the nodule on the working grid
    detector_scores: tuple[float, ...]
    blob_scores: tuple[float, ...]
    found: bool

    @property
    def has_candidate(self) -> bool:
        return bool(self.detector_scores or self.blob_scores)


def report(pipeline: LungNodulePipeline, phantom: Phantom) -> list[NoduleReport]:
    """One report per nodule of `phantom` (none if the pipeline finds no lungs)."""
    volume = phantom_volume(phantom)
    flips = canonical_flips(volume)
    view = working_view(flips.apply(volume.voxels), volume.spacing)
    if view is None:
        return []
    proposals = pipeline.propose(view)
    truth = working_truth(phantom, flips, view)
    return [
        _nodule_report(pipeline, phantom, index, truth == index, proposals)
        for index in range(1, len(phantom.nodules) + 1)
    ]


def working_truth(phantom: Phantom, flips: Flips, view: WorkingView) -> np.ndarray:
    """The phantom's nodule labels (1, 2, ... per nodule) on `view`'s working grid."""
    labels = np.ascontiguousarray(flips.apply(phantom.labels)[view.box]).astype(np.float32)
    shape = tuple(view.image.shape)
    truth: np.ndarray = resample(torch.from_numpy(labels), shape, mode="nearest").numpy()
    return truth.astype(np.int64)


def _nodule_report(
    pipeline: LungNodulePipeline,
    phantom: Phantom,
    index: int,
    inside: np.ndarray,
    proposals: Proposals,
) -> NoduleReport:
    nodule = phantom.nodules[index - 1]
    overlapping = set(np.unique(proposals.components[inside])) - {0}
    detector = tuple(s for c, s in proposals.detector if c.label in overlapping)
    blobs = tuple(s for c, s in proposals.blobs if inside[c.peak])
    thresholds = pipeline.thresholds
    found = any(s >= thresholds.classifier for s in detector) or any(
        s >= thresholds.blob_classifier for s in blobs
    )
    peak = float(proposals.probability.numpy()[inside].max()) if inside.any() else 0.0
    return NoduleReport(
        phantom.seed,
        nodule.diameter_mm,
        nodule.kind,
        nodule.placement,
        peak,
        detector,
        blobs,
        found,
    )


def summary_lines(reports: list[NoduleReport]) -> list[str]:
    """Per size band: nodules found, nodules with a candidate of either kind, nodules."""
    lines = []
    for name, low, high in SIZE_BANDS:
        members = [r for r in reports if low <= r.diameter_mm < high]
        found = sum(r.found for r in members)
        reached = sum(r.has_candidate for r in members)
        lines.append(f"{name}: {found} found, {reached} with a candidate, of {len(members)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-seed", type=int, required=True)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--missed", action="store_true", help="list only the missed nodules")
    args = parser.parse_args()
    pipeline = LungNodulePipeline()
    reports: list[NoduleReport] = []
    for seed in range(args.first_seed, args.first_seed + args.cases):
        for row in report(pipeline, generate(seed)):
            reports.append(row)
            if not (args.missed and row.found):
                print(
                    f"seed {row.seed} {row.diameter_mm:.1f} mm {row.kind} {row.placement}: "
                    f"peak {row.peak_probability:.3f}, detector {_scores(row.detector_scores)}, "
                    f"blobs {_scores(row.blob_scores)}, {'found' if row.found else 'missed'}",
                    flush=True,
                )
    print("\n".join(summary_lines(reports)))


def _scores(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


if __name__ == "__main__":
    main()
