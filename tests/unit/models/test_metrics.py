"""Lesion-level matching with a threshold per candidate source, and the joint threshold choice."""

from __future__ import annotations

import numpy as np

from models.reference.evaluate import (
    BLOB,
    DETECTOR,
    NEVER,
    by_geometry,
    choose_thresholds,
    geometry_group,
)
from models.reference.metrics import CaseTable, merge, outcome, tabulate
from models.reference.phantom import Geometry


def a_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two nodules; the detector run finds nodule 1 (0.95) and a false positive (0.6), the
    blob run finds nodule 2 (0.97) and a false positive (0.9)."""
    truth = np.zeros((1, 4, 8), dtype=np.int32)
    truth[0, 0, 0:2] = 1
    truth[0, 2, 4:6] = 2
    detector = np.zeros_like(truth)
    detector[0, 0, 0:2] = 1
    detector[0, 3, 7] = 2
    blobs = np.zeros_like(truth)
    blobs[0, 2, 4:6] = 1
    blobs[0, 1, 7] = 2
    return truth, detector, blobs


def tables() -> list[CaseTable]:
    truth, detector, blobs = a_case()
    nodules = [(8.0, "solid", "free"), (4.0, "solid", "free")]
    return [
        merge(
            tabulate(truth, detector, [0.95, 0.6], nodules, DETECTOR),
            tabulate(truth, blobs, [0.97, 0.9], nodules, BLOB),
        )
    ]


def test_each_source_is_judged_by_its_own_threshold() -> None:
    [table] = tables()

    both = outcome(table, {DETECTOR: 0.9, BLOB: 0.95})
    no_blobs = outcome(table, {DETECTOR: 0.5, BLOB: NEVER})

    assert [n.detected for n in both.nodules] == [True, True]
    assert both.false_positives == 0
    assert [n.detected for n in no_blobs.nodules] == [True, False]
    assert no_blobs.false_positives == 1
    assert both.nodules[0].dice == 1.0


def test_the_chosen_thresholds_find_the_most_within_the_false_positive_budget() -> None:
    chosen, summary = choose_thresholds(tables())

    assert chosen[DETECTOR] > 0.6 and 0.9 < chosen[BLOB] <= 0.97
    assert summary["false_positives_per_scan"] == 0.0
    assert summary["sensitivity_6mm_and_larger"] == 1.0


def test_a_larger_false_positive_budget_buys_the_nodule_ranked_below_a_false_positive() -> None:
    truth, detector, blobs = a_case()
    nodules = [(8.0, "solid", "free"), (4.0, "solid", "free")]
    table = merge(
        tabulate(truth, detector, [0.95, 0.6], nodules, DETECTOR),
        tabulate(truth, blobs, [0.85, 0.9], nodules, BLOB),  # the blob nodule under its FP
    )

    strict, strict_summary = choose_thresholds([table], max_false_positives=0.0)
    loose, loose_summary = choose_thresholds([table], max_false_positives=1.0)

    assert strict[BLOB] > 0.9 and strict_summary["false_positives_per_scan"] == 0.0
    assert loose[BLOB] <= 0.85 and loose_summary["false_positives_per_scan"] == 1.0
    assert loose_summary["sensitivity_by_size"]["3-6 mm"]["detected"] == 1  # type: ignore[index]


def test_geometry_groups_name_the_matrix_with_its_pixels_and_thin_or_thick_slices() -> None:
    fine_thin = Geometry(matrix=512, pixel_spacing=0.7, slice_thickness=1.5, slices=200)
    coarse_thick = Geometry(matrix=256, pixel_spacing=1.4, slice_thickness=2.0, slices=150)

    assert geometry_group(fine_thin) == "512 matrix (0.6-1.0 mm pixels), 1-1.5 mm slices"
    assert geometry_group(coarse_thick) == "256 matrix (1.2-1.6 mm pixels), 2-3 mm slices"


def test_each_geometry_group_is_summarised_from_its_own_cases() -> None:
    [table] = tables()
    found = outcome(table, {DETECTOR: 0.9, BLOB: 0.95})  # both nodules, no false positive
    missed = outcome(table, {DETECTOR: 0.5, BLOB: NEVER})  # one nodule, one false positive

    summary = by_geometry([found, missed, found], ["thin", "thick", "thin"])

    assert sorted(summary) == ["thick", "thin"]
    thin, thick = summary["thin"], summary["thick"]
    assert isinstance(thin, dict) and isinstance(thick, dict)
    assert (thin["cases"], thin["false_positives_per_scan"]) == (2, 0.0)
    assert (thick["cases"], thick["false_positives_per_scan"]) == (1, 1.0)
    assert thick["sensitivity_by_size"]["3-6 mm"]["detected"] == 0
