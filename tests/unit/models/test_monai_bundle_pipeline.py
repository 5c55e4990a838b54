"""Bring-your-own model as a MONAI bundle: found by the registry, run with its own transforms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

from models.errors import BundleError
from models.pipelines.monai_bundle import MonaiBundlePipeline, as_loaded_image
from models.pipelines.registry import available, get_pipeline
from models.volume import Volume, load_files
from tests.support.bundles import DENSE_HU, write_bundle
from tests.unit.models.conftest import MakeSeries


def coronal_volume() -> Volume:
    """Two dense blocks in lung-like air, acquired coronally (rows run feet-ward)."""
    voxels = np.full((24, 40, 40), -900.0, dtype=np.float32)
    voxels[6:16, 8:22, 10:24] = 50.0
    voxels[18:22, 28:36, 26:36] = 80.0
    return Volume(
        voxels=voxels,
        spacing=(2.0, 0.8, 0.8),
        origin=(-20.0, 10.0, 30.0),
        row_cosine=(1.0, 0.0, 0.0),
        column_cosine=(0.0, 0.0, -1.0),
        slice_cosine=(0.0, 1.0, 0.0),
        source_sop_instance_uids=tuple(str(k) for k in range(24)),
    )


def bounding_box(mask: np.ndarray) -> list[tuple[int, int]]:
    return [
        (
            int(np.flatnonzero(mask.any(axis=other))[0]),
            int(np.flatnonzero(mask.any(axis=other))[-1]),
        )
        for other in ((1, 2), (0, 2), (0, 1))
    ]


def test_bundle_is_listed_and_segments_on_the_original_grid(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    write_bundle(models_dir / "dense-bundle")
    volume = coronal_volume()

    listed = {info.name: info for info in available(models_dir)}
    assert (listed["dense-bundle"].kind, listed["dense-bundle"].version) == (
        "monai-bundle",
        "0.2.0",
    )
    findings = get_pipeline("dense-bundle", models_dir).run(volume)

    assert findings.pipeline_version == "0.2.0"
    assert findings.label_map.shape == volume.voxels.shape
    dense, found = volume.voxels > DENSE_HU, findings.label_map == 1
    assert 2 * (dense & found).sum() / (dense.sum() + found.sum()) > 0.85  # edges resampled twice
    assert bounding_box(found) == bounding_box(dense)  # no axis flipped, swapped or shifted
    assert len(findings.lesions) == 2
    assert all(lesion.mean_hu > 0 for lesion in findings.lesions)
    assert [(s.label, s.name, s.category.meaning) for s in findings.segments] == [
        (1, "dense tissue", "Tissue")
    ]
    assert not (models_dir / "dense-bundle/eval").exists()  # SaveImaged was skipped


def test_bundle_segments_take_their_codes_from_dicom_segments_json(tmp_path: Path) -> None:
    folder = tmp_path / "coded"
    write_bundle(folder)
    lung = ["39607008", "SCT", "Lung"]
    segments = [{"label": 1, "name": "Dense lung", "category": lung, "type": lung}]
    (folder / "configs/dicom_segments.json").write_text(json.dumps(segments))

    pipeline = MonaiBundlePipeline(folder)

    assert [(s.name, s.property_type.value) for s in pipeline.segments] == [
        ("Dense lung", "39607008")
    ]


def test_bundle_that_does_not_invert_its_preprocessing_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "no-invert"
    argmax = {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}
    write_bundle(folder, postprocessing=[argmax])

    with pytest.raises(BundleError, match="Invertd"):
        MonaiBundlePipeline(folder).run(coronal_volume())


def test_bundle_without_weights_is_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "unweighted"
    write_bundle(folder)
    (folder / "models/model.pt").unlink()

    with pytest.raises(BundleError, match=r"model\.pt"):
        MonaiBundlePipeline(folder)


def test_volume_enters_a_bundle_as_monai_s_own_dicom_reader_gives_it(
    make_series: MakeSeries, tmp_path: Path
) -> None:
    """The same voxels at the same RAS coordinates: both images, reoriented to RAS, agree."""
    series = make_series(slices=5, orientation=(0, 1, 0, 0, 0, -1), step=-2.5, size=(8, 6))
    for k, dataset in enumerate(series):  # every voxel its own value
        dataset.PixelData = (np.arange(48).reshape(8, 6) + 100 * k).astype("<u2").tobytes()
        dataset.save_as(tmp_path / f"{k}.dcm", enforce_file_format=True)
    to_ras = Compose([EnsureChannelFirst(), Orientation("RAS")])

    theirs = to_ras(LoadImage(reader="PydicomReader", image_only=True)(str(tmp_path)))
    ours = to_ras(as_loaded_image(load_files(sorted(tmp_path.glob("*.dcm")))))

    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(ours.affine.numpy(), theirs.affine.numpy())
