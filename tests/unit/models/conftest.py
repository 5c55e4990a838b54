"""Small synthetic series built with pydicom, in any orientation and order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

MakeSeries = Callable[..., list[Dataset]]


def _slice(
    pixels: np.ndarray,
    position: Sequence[float],
    orientation: Sequence[float],
    series_uid: str,
    number: int,
    spacing: float,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.3"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 2
    ds.RescaleIntercept = -1024
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


@pytest.fixture
def make_series() -> MakeSeries:
    """`make_series(slices, orientation, step)`: slice k holds value k everywhere (stored), so
    the loaded HU of slice k is 2 * k - 1024; positions advance by `step` along the normal."""

    def make(
        slices: int = 5,
        orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
        step: float = 2.5,
        size: tuple[int, int] = (8, 6),
        spacing: float = 0.75,
    ) -> list[Dataset]:
        row, column = np.array(orientation[:3], float), np.array(orientation[3:], float)
        normal = np.cross(row, column)
        series_uid = generate_uid()
        origin = np.array([10.0, -20.0, 30.0])
        return [
            _slice(
                np.full(size, k),
                origin + k * step * normal,
                orientation,
                series_uid,
                k + 1,
                spacing,
            )
            for k in range(slices)
        ]

    return make
