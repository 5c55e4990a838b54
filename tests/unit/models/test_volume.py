"""Volume loading: sorting along the normal, geometry, rescale, refusals, real compressed files."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from models.errors import NotAVolumeError
from models.volume import check_series, load_datasets
from tests.unit.models.conftest import MakeSeries

HEAD_FIRST = (1, 0, 0, 0, 1, 0)
SAGITTAL = (0, 1, 0, 0, 0, -1)
OBLIQUE = (1, 0, 0, 0, 0.8660254, -0.5)


@pytest.mark.parametrize("orientation", [HEAD_FIRST, SAGITTAL, OBLIQUE])
@pytest.mark.parametrize("step", [2.5, -2.5])
def test_slices_sorted_by_position_along_normal_whatever_the_order(
    make_series: MakeSeries, orientation: tuple[float, ...], step: float
) -> None:
    series = make_series(orientation=orientation, step=step)
    shuffled = series[:]
    random.Random(4).shuffle(shuffled)
    for ds in shuffled:
        ds.InstanceNumber = random.Random(ds.SOPInstanceUID).randint(1, 99)

    volume = load_datasets(shuffled)

    by_position = sorted(
        series, key=lambda ds: np.dot(ds.ImagePositionPatient, volume.slice_cosine)
    )
    assert volume.source_sop_instance_uids == tuple(ds.SOPInstanceUID for ds in by_position)
    stored = [int(ds.pixel_array[0, 0]) for ds in by_position]
    assert volume.voxels[:, 0, 0].tolist() == [2.0 * v - 1024 for v in stored]
    assert volume.spacing == pytest.approx((2.5, 0.75, 0.75))
    assert volume.shape == (5, 8, 6)


def test_index_to_patient_reproduces_every_slice_position(make_series: MakeSeries) -> None:
    series = make_series(orientation=OBLIQUE, step=-3.0)
    volume = load_datasets(series)
    positions = {ds.SOPInstanceUID: np.array(ds.ImagePositionPatient) for ds in series}
    for k, uid in enumerate(volume.source_sop_instance_uids):
        assert volume.index_to_patient([k, 0, 0]) == pytest.approx(positions[uid])
    column_end = volume.index_to_patient([0, 0, 5]) - volume.index_to_patient([0, 0, 0])
    assert column_end == pytest.approx(np.array(OBLIQUE[:3]) * 0.75 * 5)


def test_head_first_and_feet_first_give_the_same_patient_geometry(make_series: MakeSeries) -> None:
    up = load_datasets(make_series(step=2.0))
    down = load_datasets(make_series(step=-2.0))
    assert up.slice_cosine == down.slice_cosine == pytest.approx((0, 0, 1))
    assert up.origin[2] == pytest.approx(30.0)
    assert down.origin[2] == pytest.approx(30.0 - 4 * 2.0)


def test_header_check_needs_no_pixels(make_series: MakeSeries) -> None:
    series = make_series()
    for ds in series:
        del ds.PixelData
    geometry = check_series(series)
    assert geometry.slice_distance == pytest.approx(2.5)
    assert len(geometry.order) == 5


def _drop(series: list[Dataset], index: int) -> list[Dataset]:
    return series[:index] + series[index + 1 :]


def _changed(ds: Dataset, **values: object) -> Dataset:
    copied = copy.deepcopy(ds)
    for keyword, value in values.items():
        setattr(copied, keyword, value)
    return copied


def _moved(ds: Dataset, shift: float) -> Dataset:
    x, y, z = ds.ImagePositionPatient
    return _changed(ds, ImagePositionPatient=[x, y, z + shift])


Damage = Callable[[list[Dataset]], list[Dataset]]
DAMAGES: list[tuple[Damage, str]] = [
    (lambda s: s[:1], "at least 2 slices"),
    (lambda s: _drop(s, 2), r"1 slice\(s\) missing"),
    (lambda s: [*s[:-1], _moved(s[-1], 0.6)], "uneven slice spacing"),
    (lambda s: [*s[:-1], _changed(s[-1], ImageOrientationPatient=list(OBLIQUE))], "orientations"),
    (
        lambda s: [*s[:-1], _changed(s[-1], Rows=4, Columns=4, PixelData=bytes(32))],
        "different sizes",
    ),
    (lambda s: [*s, _changed(s[0], SOPInstanceUID=generate_uid())], "share one position"),
    (lambda s: [*s[:-1], _changed(s[-1], SeriesInstanceUID=generate_uid())], "different series"),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGES)
def test_not_a_volume_is_refused_with_a_reason(
    make_series: MakeSeries, damage: Damage, reason: str
) -> None:
    with pytest.raises(NotAVolumeError, match=reason):
        load_datasets(damage(make_series()))


def _two_slice_series(name: str) -> list[Dataset]:
    """A real file (as compressed as it comes) and a copy one slice further along its normal."""
    first = pydicom.dcmread(get_testdata_file(name))
    second = copy.deepcopy(first)
    second.SOPInstanceUID = generate_uid()
    normal = np.cross(first.ImageOrientationPatient[:3], first.ImageOrientationPatient[3:])
    second.ImagePositionPatient = list(np.array(first.ImagePositionPatient, float) + 3.0 * normal)
    return [second, first]


@pytest.mark.parametrize(
    "compressed",
    ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"],
)
def test_real_compressed_files_decode_to_the_uncompressed_values(compressed: str) -> None:
    reference = load_datasets(_two_slice_series("MR_small.dcm"))
    decoded = load_datasets(_two_slice_series(compressed))
    assert decoded.shape == reference.shape == (2, 64, 64)
    np.testing.assert_array_equal(decoded.voxels, reference.voxels)


def test_real_ct_applies_rescale_and_refuses_a_single_slice() -> None:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with pytest.raises(NotAVolumeError, match="at least 2 slices"):
        load_datasets([ct])
    volume = load_datasets(_two_slice_series("CT_small.dcm"))
    expected = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    np.testing.assert_allclose(volume.voxels[0], expected)


def test_a_fractional_rescale_is_applied_in_float32() -> None:
    series = _two_slice_series("CT_small.dcm")
    for ds in series:
        ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-1000.25"
    volume = load_datasets(series)
    expected = series[1].pixel_array * 0.5 - 1000.25

    assert volume.voxels.dtype == np.float32
    np.testing.assert_allclose(volume.voxels[0], expected, rtol=0, atol=1e-3)
