"""Lesion-level matching of predicted lesions against phantom nodules, and Dice.

A case is reduced once to an overlap table (nodule x lesion voxel counts, sizes, confidences,
and which candidate source each lesion came from), so outcomes at any confidence threshold per
source come without re-running the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from models.reference.phantom import SIZE_BANDS_MM

SIZE_BANDS = tuple(
    (f"{low:g}-{high:g} mm", low, high + 0.01 if index == len(SIZE_BANDS_MM) - 1 else high)
    for index, (low, high) in enumerate(SIZE_BANDS_MM)
)
"""The generator's size bands, named for reports; the last one includes its upper end."""


@dataclass(frozen=True)
class CaseTable:
    diameters: np.ndarray  # per nodule, mm
    kinds: tuple[str, ...]
    placements: tuple[str, ...]
    nodule_voxels: np.ndarray  # per nodule
    lesion_voxels: np.ndarray  # per predicted lesion
    confidences: np.ndarray  # per predicted lesion
    overlap: np.ndarray  # (nodules, lesions) shared voxels
    sources: tuple[str, ...]  # per predicted lesion: the candidates it came from


@dataclass(frozen=True)
class NoduleOutcome:
    diameter_mm: float
    kind: str
    placement: str
    detected: bool
    dice: float


@dataclass(frozen=True)
class CaseOutcome:
    nodules: tuple[NoduleOutcome, ...]
    false_positives: int
    voxel_dice: float


def tabulate(
    truth: np.ndarray,
    lesion_map: np.ndarray,
    confidences: list[float],
    nodules: list[tuple[float, str, str]],
    source: str,
) -> CaseTable:
    """`truth` holds nodule i at value i, `lesion_map` lesion j (from `source`) at value j, on
    one grid."""
    n, m = len(nodules), len(confidences)
    both = (truth > 0) & (lesion_map > 0)
    overlap = np.zeros((n + 1, m + 1), dtype=np.int64)
    np.add.at(overlap, (truth[both].astype(np.int64), lesion_map[both].astype(np.int64)), 1)
    return CaseTable(
        diameters=np.array([d for d, _, _ in nodules]),
        kinds=tuple(k for _, k, _ in nodules),
        placements=tuple(p for _, _, p in nodules),
        nodule_voxels=np.bincount(truth.ravel().astype(np.int64), minlength=n + 1)[1 : n + 1],
        lesion_voxels=np.bincount(lesion_map.ravel().astype(np.int64), minlength=m + 1)[1 : m + 1],
        confidences=np.asarray(confidences, dtype=np.float64),
        overlap=overlap[1:, 1:],
        sources=(source,) * m,
    )


def merge(first: CaseTable, second: CaseTable) -> CaseTable:
    """One case's lesions from two runs (two candidate sources) side by side."""
    return CaseTable(
        diameters=first.diameters,
        kinds=first.kinds,
        placements=first.placements,
        nodule_voxels=first.nodule_voxels,
        lesion_voxels=np.concatenate([first.lesion_voxels, second.lesion_voxels]),
        confidences=np.concatenate([first.confidences, second.confidences]),
        overlap=np.concatenate([first.overlap, second.overlap], axis=1),
        sources=first.sources + second.sources,
    )


def outcome(table: CaseTable, thresholds: Mapping[str, float]) -> CaseOutcome:
    """Nodules detected (overlapped by a kept lesion: confidence at least its source's
    threshold), their Dice, and unmatched kept lesions."""
    needed = np.array([thresholds[source] for source in table.sources], dtype=np.float64)
    kept = table.confidences >= needed
    overlap = table.overlap[:, kept]
    sizes = table.lesion_voxels[kept]
    nodules = []
    for i in range(len(table.diameters)):
        hits = overlap[i] > 0
        denominator = table.nodule_voxels[i] + sizes[hits].sum()
        value = 2.0 * overlap[i].sum() / denominator if hits.any() else 0.0
        nodules.append(
            NoduleOutcome(
                float(table.diameters[i]),
                table.kinds[i],
                table.placements[i],
                bool(hits.any()),
                float(value),
            )
        )
    false_positives = int((overlap.sum(axis=0) == 0).sum())
    total = table.nodule_voxels.sum() + sizes.sum()
    voxel_dice = 2.0 * overlap.sum() / total if total else 1.0
    return CaseOutcome(tuple(nodules), false_positives, float(voxel_dice))


def summarise(cases: list[CaseOutcome]) -> dict[str, object]:
    nodules = [n for case in cases for n in case.nodules]
    bands = {}
    for name, low, high in SIZE_BANDS:
        members = [n for n in nodules if low <= n.diameter_mm < high]
        found = sum(n.detected for n in members)
        bands[name] = {
            "nodules": len(members),
            "detected": found,
            "sensitivity": found / len(members) if members else None,
        }
    large = [n for n in nodules if n.diameter_mm >= 6.0]
    detected = [n for n in nodules if n.detected]
    groups = {}
    for group in sorted({n.kind for n in nodules} | {n.placement for n in nodules}):
        members = [n for n in nodules if group in (n.kind, n.placement)]
        groups[group] = {
            "nodules": len(members),
            "sensitivity": sum(n.detected for n in members) / len(members),
        }
    return {
        "cases": len(cases),
        "nodules": len(nodules),
        "sensitivity_by_size": bands,
        "sensitivity_6mm_and_larger": sum(n.detected for n in large) / len(large)
        if large
        else None,
        "sensitivity_by_kind_and_placement": groups,
        "false_positives_per_scan": sum(c.false_positives for c in cases) / len(cases)
        if cases
        else 0.0,
        "mean_dice_detected": float(np.mean([n.dice for n in detected])) if detected else None,
        "mean_voxel_dice": float(np.mean([c.voxel_dice for c in cases])) if cases else None,
    }
