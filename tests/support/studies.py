"""Synthetic CT studies written as real DICOM files: a chest phantom series and, beside it in
the same study, a one-slice localizer (which the node must skip: it is not a volume)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.reference.dicom_series import SeriesIdentity, write_series
from models.reference.phantom import Geometry, generate

CT_SERIES_NUMBER = 2
LOCALIZER_SERIES_NUMBER = 1
LOCALIZER_SKIP_REASON = "not a volume: a volume needs at least 2 slices, got 1"


@dataclass(frozen=True)
class CtStudy:
    ct: list[Path]
    localizer: Path | None

    @property
    def files(self) -> list[Path]:
        return [*self.ct, *([self.localizer] if self.localizer else [])]


def write_ct_study(
    directory: Path,
    seed: int,
    geometry: Geometry,
    *,
    nodule_count: int,
    window: tuple[float, float] | None = None,
    localizer: bool = True,
) -> CtStudy:
    """A CT series (number 2) of the phantom `seed` in `directory/ct`, and with `localizer`
    one slice of series 1 of the same study (UIDs derive from the seed) in `directory/loc`."""
    phantom = generate(seed, geometry, nodule_count=nodule_count, window=window)
    ct = write_series(phantom, directory / "ct", SeriesIdentity(series_number=CT_SERIES_NUMBER))
    if not localizer:
        return CtStudy(ct, None)
    start = window[0] if window else 0.0
    two_slices = Geometry(geometry.matrix, geometry.pixel_spacing, geometry.slice_thickness, 2)
    slab = (start, start + 2 * geometry.slice_thickness)
    scout = generate(seed, two_slices, nodule_count=0, window=slab)
    identity = SeriesIdentity(series_number=LOCALIZER_SERIES_NUMBER)
    return CtStudy(ct, write_series(scout, directory / "loc", identity)[0])
