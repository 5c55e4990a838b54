"""Candidate classifiers come back from their weight files with the head they were trained with,
the blob filter's gates and prefilter from the weights' metadata, and stage 2's mined candidates
survive a round trip through their cache file unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from models.pipelines.blob_prefilter import BlobPrefilter
from models.pipelines.blobs import BlobGates
from models.pipelines.lung_nodule import LungNodulePipeline
from models.reference import WEIGHTS_DIR
from models.reference.classifier_training import Mined
from models.reference.network import CandidateClassifier, load_classifier, save_weights


@pytest.mark.parametrize("spatial", [False, True])
def test_a_classifier_loads_with_the_head_of_its_weights(tmp_path: Path, spatial: bool) -> None:
    torch.manual_seed(0)
    trained = CandidateClassifier(spatial).eval()
    save_weights(trained.state_dict(), tmp_path / "classifier.pt")
    cubes = torch.rand(3, 2, 32, 32, 32)

    loaded = load_classifier(tmp_path / "classifier.pt").eval()

    assert isinstance(loaded.head[1], torch.nn.Dropout) is spatial
    with torch.no_grad():  # the file holds half precision: the scores agree to its rounding
        assert torch.allclose(loaded(cubes), trained(cubes), atol=2e-2)


def test_mined_candidates_round_trip_exactly(tmp_path: Path) -> None:
    mined = Mined(
        torch.rand(4, 2, 32, 32, 32),
        torch.tensor([1.0, 0.0, 0.0, 1.0]),
        torch.tensor([False, True, True, False]),
    )
    mined.save(tmp_path / "mined" / "candidates.pt")

    again = Mined.load(tmp_path / "mined" / "candidates.pt")

    assert torch.equal(again.inputs, mined.inputs)
    assert torch.equal(again.labels, mined.labels)
    assert torch.equal(again.blobs, mined.blobs)
    assert torch.equal(again.detector_candidates().labels, torch.tensor([1.0, 1.0]))


def test_without_their_own_classifier_detector_candidates_get_the_blob_one(tmp_path: Path) -> None:
    for name in ("detector.pt", "blob_classifier.pt", "reference.json"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    assert not (WEIGHTS_DIR / "classifier.pt").exists()  # the shipped weights, since 0.5.1

    shipped_layout = LungNodulePipeline(tmp_path)
    assert shipped_layout.blob_classifier is not None
    assert shipped_layout.classifier is shipped_layout.blob_classifier

    save_weights(CandidateClassifier(spatial=False).state_dict(), tmp_path / "classifier.pt")
    with_own = LungNodulePipeline(tmp_path)
    assert with_own.classifier is not with_own.blob_classifier
    assert isinstance(with_own.classifier.head[0], torch.nn.AdaptiveAvgPool3d)


def test_the_blob_gates_come_from_the_weights_metadata(tmp_path: Path) -> None:
    for name in ("detector.pt", "blob_classifier.pt"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    metadata = json.loads((WEIGHTS_DIR / "reference.json").read_text())
    for key in ("blob_response", "blob_roundness"):  # weights before 0.5.6 name no gates
        metadata["thresholds"].pop(key, None)
    (tmp_path / "reference.json").write_text(json.dumps(metadata))

    assert LungNodulePipeline(tmp_path).thresholds.blob_gates == BlobGates()

    metadata["thresholds"].update(blob_response=0.08, blob_roundness=0.025)
    (tmp_path / "reference.json").write_text(json.dumps(metadata))

    assert LungNodulePipeline(tmp_path).thresholds.blob_gates == BlobGates(0.08, 0.025)


def test_the_blob_prefilter_comes_from_the_weights_metadata(tmp_path: Path) -> None:
    for name in ("detector.pt", "blob_classifier.pt"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    metadata = json.loads((WEIGHTS_DIR / "reference.json").read_text())
    metadata.pop("blob_prefilter", None)  # weights before 0.5.7 have none
    (tmp_path / "reference.json").write_text(json.dumps(metadata))

    assert LungNodulePipeline(tmp_path).blob_prefilter is None

    prefilter = BlobPrefilter((0.0,) * 6, (1.0,) * 6, (0.0, 1, 0, 0, 0, 0), -0.5, 0.25)
    metadata["blob_prefilter"] = prefilter.to_json()
    (tmp_path / "reference.json").write_text(json.dumps(metadata))

    assert LungNodulePipeline(tmp_path).blob_prefilter == prefilter
    assert LungNodulePipeline(tmp_path, blob_prefilter=False).blob_prefilter is None
