"""The per-nodule report on a small phantom with one obvious nodule and the shipped weights."""

from __future__ import annotations

from models.pipelines.lung_nodule import LungNodulePipeline
from models.pipelines.registry import get_pipeline
from models.reference.per_nodule import report, summary_lines
from models.reference.phantom import Geometry, generate


def test_the_obvious_nodule_is_reported_found_by_a_detector_candidate() -> None:
    phantom = generate(164, Geometry(256, 1.4, 2.0, 40), nodule_count=1, window=(120, 200))
    pipeline = get_pipeline("lung-nodule-reference")
    assert isinstance(pipeline, LungNodulePipeline)

    (row,) = report(pipeline, phantom)

    assert row.seed == 164 and row.diameter_mm == phantom.nodules[0].diameter_mm
    assert row.peak_probability > 0.5
    assert max(row.detector_scores) >= pipeline.thresholds.classifier
    assert row.found and row.has_candidate
    assert summary_lines([row]) == [
        "3-6 mm: 0 found, 0 with a candidate, of 0",
        "6-10 mm: 0 found, 0 with a candidate, of 0",
        "10-25 mm: 1 found, 1 with a candidate, of 1",
    ]
