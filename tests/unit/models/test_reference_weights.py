"""The shipped reference weights find an obvious nodule in a small phantom, from DICOM files.

False positives are not judged here: `python -m models.reference.evaluate` measures them on
held-out phantoms and the weights' metadata records the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.pipelines.registry import get_pipeline
from models.reference.dicom_series import phantom_volume, write_series
from models.reference.phantom import Geometry, generate
from models.volume import load_files

# Seed 164 was picked because its one nodule is obvious: solid, free-standing, 17 mm, mid-slab.
SEED = 164


def test_shipped_weights_find_an_obvious_nodule(tmp_path: Path) -> None:
    phantom = generate(SEED, Geometry(256, 1.4, 2.0, 40), nodule_count=1, window=(120, 200))
    (nodule,) = phantom.nodules
    assert nodule.kind == "solid" and nodule.placement == "free" and nodule.diameter_mm > 15
    volume = load_files(write_series(phantom, tmp_path))
    truth = phantom.labels[::-1] == 1  # the files load in the opposite slice order

    findings = get_pipeline("lung-nodule-reference").run(volume)

    hits = [
        lesion for lesion in findings.lesions if truth[findings.lesion_map == lesion.index].any()
    ]
    assert len(hits) == 1, findings.lesions
    (hit,) = hits
    true_centre = volume.index_to_patient(np.argwhere(truth).mean(axis=0))
    assert np.linalg.norm(np.array(hit.centroid_patient_mm) - true_centre) < 3.0
    assert abs(hit.longest_axial_diameter_mm - nodule.diameter_mm) < 0.25 * nodule.diameter_mm
    assert findings.pipeline_name == "lung-nodule-reference"


def test_shipped_weights_find_a_large_ground_glass_nodule() -> None:
    """Validation seed 2,000,013 holds a 23 mm ground-glass nodule that release 0.5.1 missed:
    its 96x160x160 inference windows changed what the U-Net's instance normalisation saw."""
    phantom = generate(2_000_013)
    nodule = phantom.nodules[0]
    assert nodule.kind == "ground-glass" and nodule.diameter_mm > 20

    findings = get_pipeline("lung-nodule-reference").run(phantom_volume(phantom))

    assert findings.lesion_map[phantom.labels == 1].any(), findings.lesions
