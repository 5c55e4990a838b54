"""The blob prefilter: its features, its scores and selection, its fitting (and the table it is
fitted on), its JSON form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.orientation import canonical_flips
from models.pipelines.blob_prefilter import FEATURES, BlobPrefilter, blob_features
from models.pipelines.blobs import Blob
from models.pipelines.lung_nodule import LungNodulePipeline, working_view
from models.reference.dicom_series import phantom_volume
from models.reference.phantom import Geometry, generate
from models.reference.prefilter_fitting import BlobTable, collect, fit, fit_report

CENTRE_ONLY = BlobPrefilter(
    mean=(0.0,) * 6, scale=(1.0,) * 6, weights=(0, 0, 0, 0, 1, 0), bias=0.0, threshold=0.5
)
"""Scores a blob by the image at its centre: keeps those at 0.5 or more."""


def test_features_are_the_blob_its_centre_and_the_cube_around_it() -> None:
    image = np.zeros((20, 20, 20), dtype=np.float32)
    image[10, 10, 10] = 0.7
    probability = np.zeros_like(image)
    probability[12, 9, 10] = 0.2  # inside the 7-voxel cube around the centre
    probability[15, 10, 10] = 0.9  # outside it
    blob = Blob((10, 10, 10), sigma=1.5, response=0.1, roundness=0.03)

    features = blob_features([blob], image, probability)

    expected = [math.log(0.1), math.log(0.03), 1.5, math.log(0.2 + 1e-4), 0.7, 0.7 / 343]
    assert features.shape == (1, len(FEATURES))
    np.testing.assert_allclose(features[0], expected, rtol=1e-6)


def test_a_blob_at_the_edge_gets_the_part_of_its_cube_inside_the_volume() -> None:
    image = np.ones((8, 8, 8), dtype=np.float32)
    blob = Blob((0, 0, 7), sigma=1.0, response=0.2, roundness=0.05)

    features = blob_features([blob], image, np.zeros_like(image))

    assert features[0, FEATURES.index("image_near")] == pytest.approx(1.0)


def test_select_keeps_the_blobs_scoring_the_threshold_or_more() -> None:
    image = np.zeros((20, 20, 20), dtype=np.float32)
    image[5, 5, 5], image[14, 14, 14] = 0.6, 0.4
    bright = Blob((5, 5, 5), 1.0, 0.2, 0.05)
    faint = Blob((14, 14, 14), 1.0, 0.2, 0.05)

    assert CENTRE_ONLY.select([bright, faint], image, np.zeros_like(image)) == [bright]
    assert CENTRE_ONLY.select([], image, image) == []


def test_json_round_trip_and_a_wrong_length_refused() -> None:
    assert BlobPrefilter.from_json(CENTRE_ONLY.to_json()) == CENTRE_ONLY
    assert CENTRE_ONLY.to_json()["features"] == list(FEATURES)
    with pytest.raises(ValueError, match="6 values"):
        BlobPrefilter((0.0,), (1.0,), (1.0,), 0.0, 0.0)


def _table(rng: np.random.Generator) -> BlobTable:
    """Blobs whose confidence rises with the image at their centre; some of the bright ones
    are nodules."""
    count = 2000
    features = rng.normal(size=(count, len(FEATURES)))
    centre = features[:, FEATURES.index("image_at_centre")]
    confidences = 1 / (1 + np.exp(-4 * (centre - 1.5) + rng.normal(scale=0.5, size=count)))
    in_nodule = (confidences > 0.9) & (rng.random(count) < 0.5)
    return BlobTable(features, confidences, in_nodule)


def test_the_fitted_prefilter_keeps_every_found_nodule_and_drops_most_blobs() -> None:
    table = _table(np.random.default_rng(3))

    prefilter = fit(table, blob_threshold=0.9)
    report = fit_report(table, prefilter, blob_threshold=0.9)

    found = table.in_nodule & (table.confidences >= 0.9)
    kept = prefilter.scores(table.features) >= prefilter.threshold
    assert found.any() and kept[found].all()
    assert prefilter.weights[FEATURES.index("image_at_centre")] > 0
    assert kept.mean() < 0.2
    assert report["blobs_kept"] == kept.sum()
    assert report["nodules_found_by_the_classifier"] == found.sum()


def test_fitting_without_a_likely_blob_is_refused() -> None:
    table = _table(np.random.default_rng(4))
    unlikely = BlobTable(table.features, np.zeros(len(table.confidences)), table.in_nodule)

    with pytest.raises(ValueError, match="more phantoms"):
        fit(unlikely, blob_threshold=0.9)


def test_collect_gives_a_row_per_blob_candidate_of_the_pipeline() -> None:
    phantom = generate(164, Geometry(256, 1.4, 2.0, 40), nodule_count=1, window=(120, 200))
    pipeline = LungNodulePipeline(blob_prefilter=False)
    volume = phantom_volume(phantom)
    view = working_view(canonical_flips(volume).apply(volume.voxels), volume.spacing)
    assert view is not None
    candidates = pipeline.propose(view).blobs

    table = collect(pipeline, [phantom])

    assert len(candidates) > 0
    assert table.features.shape == (len(candidates), len(FEATURES))
    assert np.isfinite(table.features).all()
    np.testing.assert_allclose(table.confidences, [score for _, score in candidates])
    assert table.in_nodule.dtype == bool
    with pytest.raises(AssertionError, match="every blob"):
        collect(LungNodulePipeline(), [phantom])
