"""Seeded chest CT phantoms with lung nodules and their label masks.

`generate(seed)` draws the geometry (a 512 matrix with 0.6-1.0 mm pixels or a 256 matrix with
1.2-1.6 mm pixels, so that either holds an adult chest; slice thickness 1-3 mm), the anatomy and
0-6 nodules of 3-25 mm (solid, part-solid, ground-glass; some juxta-pleural, some beside
vessels), and renders HU with partial volume and correlated noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.reference.anatomy import (
    BONE_HU,
    draw_chest,
    render_tissue,
    render_tubes,
    rib_segments,
    vessel_segments,
)
from models.reference.shapes import Grid, ellipsoid

GENERATOR_VERSION = "1.1"
KINDS = ("solid", "part-solid", "ground-glass")
PLACEMENTS = ("free", "juxta-pleural", "near-vessel")
SIZE_BANDS_MM = ((3.0, 6.0), (6.0, 10.0), (10.0, 25.0))
BAND_SHARES = (0.4, 0.3, 0.3)
"""The chance of each size band; training's mining may over-draw small nodules
(`--mining-small-share`). Any shares draw a band from the same random number, so the chest
(geometry, anatomy) does not change with them; where the nodules land may."""


@dataclass(frozen=True)
class Nodule:
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kind: str
    placement: str


@dataclass(frozen=True)
class Geometry:
    matrix: int
    pixel_spacing: float
    slice_thickness: float
    slices: int

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.slice_thickness, self.pixel_spacing, self.pixel_spacing)


@dataclass(frozen=True)
class Phantom:
    """HU and labels on a (slice, row, column) grid; label i marks nodule i (1-based)."""

    hu: np.ndarray
    labels: np.ndarray
    lungs: np.ndarray
    geometry: Geometry
    nodules: tuple[Nodule, ...]
    seed: int


PIXEL_SPACINGS_MM = {512: (0.6, 1.0), 256: (1.2, 1.6)}
"""Per matrix, the range its pixel spacing is drawn from. The issue asked for 0.6-1.0 mm and
both matrices; a 256 matrix at 0.6-1.0 mm covers 15-26 cm, less than the adult chest drawn
(28-35 cm wide), so 256-matrix phantoms have coarser pixels. The pipeline finds about as many
nodules in them as in 512-matrix ones (docs/models.md, session 22)."""
SLICE_THICKNESSES_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def draw_geometry(rng: np.random.Generator, length_mm: float | None = None) -> Geometry:
    matrix = int(rng.choice([256, 512]))
    pixel = float(rng.uniform(*PIXEL_SPACINGS_MM[matrix]))
    thickness = float(rng.choice(SLICE_THICKNESSES_MM))
    length = length_mm if length_mm is not None else float(rng.uniform(260, 320))
    return Geometry(matrix, pixel, thickness, max(2, round(length / thickness)))


def seed_geometry(seed: int) -> Geometry:
    """The geometry `generate(seed)` draws, without rendering the phantom."""
    return draw_geometry(np.random.default_rng(seed))


def generate(
    seed: int,
    geometry: Geometry | None = None,
    nodule_count: int | None = None,
    window: tuple[float, float] | None = None,
    band_shares: tuple[float, float, float] = BAND_SHARES,
) -> Phantom:
    """Render a phantom; `window` (z from, z to, mm of the chest) renders only a slab of it;
    `band_shares` are the chances of a nodule's size band (`SIZE_BANDS_MM`)."""
    rng = np.random.default_rng(seed)
    geometry = geometry or draw_geometry(rng)
    fov = geometry.matrix * geometry.pixel_spacing
    length = geometry.slices * geometry.slice_thickness
    chest = draw_chest(rng, (fov / 2, fov / 2), length if window is None else 300.0)
    z_offset = 0.0 if window is None else window[0]
    slices = (
        geometry.slices
        if window is None
        else round((window[1] - window[0]) / geometry.slice_thickness)
    )
    grid = Grid((slices, geometry.matrix, geometry.matrix), geometry.spacing)
    hu, lung_occupancy = render_tissue(chest, grid, z_offset)
    ribs = render_tubes(grid, rib_segments(chest), z_offset)
    hu += (BONE_HU - hu) * ribs * (1.0 - lung_occupancy)
    vessels = vessel_segments(chest, rng, grid)
    vessel_occupancy = render_tubes(grid, vessels, z_offset) * lung_occupancy
    hu += (chest.vessel_hu - hu) * vessel_occupancy
    lungs = lung_occupancy > 0.5
    count = nodule_count if nodule_count is not None else int(rng.integers(0, 7))
    nodules = place_nodules(rng, grid, lungs, vessels, z_offset, count, band_shares)
    labels = np.zeros(grid.shape, dtype=np.int16)
    for index, nodule in enumerate(nodules, start=1):
        _draw_nodule(rng, grid, hu, labels, lung_occupancy, nodule, index)
    hu += correlated_noise(rng, grid.shape, float(rng.uniform(12, 30)))
    return Phantom(
        hu=np.clip(np.rint(hu), -1024, 3071).astype(np.int16),
        labels=labels,
        lungs=lungs,
        geometry=Geometry(
            geometry.matrix, geometry.pixel_spacing, geometry.slice_thickness, slices
        ),
        nodules=tuple(nodules),
        seed=seed,
    )


def band_shares_with(small_share: float) -> tuple[float, float, float]:
    """`BAND_SHARES` with the 3-6 mm band's set to `small_share`, the others in proportion."""
    rest = (1.0 - small_share) / sum(BAND_SHARES[1:])
    return (small_share, BAND_SHARES[1] * rest, BAND_SHARES[2] * rest)


def _diameter(rng: np.random.Generator, band_shares: tuple[float, float, float]) -> float:
    band = rng.choice(3, p=list(band_shares))
    low, high = SIZE_BANDS_MM[band]
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def place_nodules(
    rng: np.random.Generator,
    grid: Grid,
    lungs: np.ndarray,
    vessels: list[tuple[np.ndarray, np.ndarray, float]],
    z_offset: float,
    count: int,
    band_shares: tuple[float, float, float] = BAND_SHARES,
) -> list[Nodule]:
    """Centres inside the lungs, apart from each other, by placement kind."""
    if count == 0 or not lungs.any():
        return []
    step = np.maximum(np.round(2.0 / np.asarray(grid.spacing)), 1).astype(int)
    coarse = lungs[:: step[0], :: step[1], :: step[2]]
    depth = ndimage.distance_transform_edt(coarse, sampling=np.asarray(grid.spacing) * step)
    coarse_grid = Grid(coarse.shape, tuple(np.asarray(grid.spacing) * step))
    candidates = np.argwhere(coarse)
    placed: list[Nodule] = []
    for _ in range(count * 60):
        if len(placed) == count:
            break
        diameter = _diameter(rng, band_shares)
        kind = str(rng.choice(KINDS, p=[0.65, 0.17, 0.18]))
        placement = str(rng.choice(PLACEMENTS, p=[0.5, 0.3, 0.2]))
        radius = diameter / 2
        centre = _candidate_centre(
            rng, coarse_grid, candidates, vessels, z_offset, placement, radius
        )
        position = np.round(centre / coarse_grid.spacing).astype(int)
        if np.any(position < 0) or np.any(position >= coarse.shape):
            continue
        index = tuple(position)
        if not coarse[index]:
            continue
        if placement == "juxta-pleural":
            fits = 0.15 * radius <= depth[index] <= 0.6 * radius
        else:
            fits = depth[index] >= radius + 1.0
        if not fits:
            continue
        if any(
            np.linalg.norm(centre - np.array(n.centre_mm)) < radius + n.diameter_mm / 2 + 4
            for n in placed
        ):
            continue
        x = (float(centre[0]), float(centre[1]), float(centre[2]))
        placed.append(Nodule(x, diameter, kind, placement))
    return placed


def _candidate_centre(
    rng: np.random.Generator,
    grid: Grid,
    candidates: np.ndarray,
    vessels: list[tuple[np.ndarray, np.ndarray, float]],
    z_offset: float,
    placement: str,
    radius: float,
) -> np.ndarray:
    thick = [v for v in vessels if v[2] >= 1.5]
    if placement == "near-vessel" and thick:
        start, end, vessel_radius = thick[int(rng.integers(len(thick)))]
        axis = end - start
        side = rng.normal(size=3)
        side -= (side @ axis) / (axis @ axis) * axis
        side /= np.linalg.norm(side) + 1e-9
        beside: np.ndarray = (
            start + rng.uniform(0.2, 0.8) * axis + side * (radius + vessel_radius) * 0.9
        )
        return beside - np.array([z_offset, 0.0, 0.0])
    voxel = candidates[int(rng.integers(len(candidates)))]
    jitter = rng.uniform(-0.5, 0.5, size=3)
    centre: np.ndarray = (voxel + jitter) * np.asarray(grid.spacing)
    return centre


def _draw_nodule(
    rng: np.random.Generator,
    grid: Grid,
    hu: np.ndarray,
    labels: np.ndarray,
    lung_occupancy: np.ndarray,
    nodule: Nodule,
    index: int,
) -> None:
    radius = nodule.diameter_mm / 2
    ratios = rng.uniform(0.8, 1.2, size=3)
    radii = radius * ratios / np.cbrt(np.prod(ratios))
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    centre = np.asarray(nodule.centre_mm)
    layers = [(radii, _outer_hu(rng, nodule.kind))]
    if nodule.kind == "part-solid":
        layers.append((radii * rng.uniform(0.35, 0.6), float(rng.uniform(-20, 60))))
    for depth, (layer_radii, value) in enumerate(layers):
        drawn = ellipsoid(grid, centre, layer_radii, rotation)
        if drawn is None:
            continue
        box, occupancy, inside = drawn
        occupancy = occupancy * lung_occupancy[box]
        hu[box] += (value - hu[box]) * occupancy
        if depth == 0:
            labels[box][inside & (lung_occupancy[box] > 0.5)] = index


def _outer_hu(rng: np.random.Generator, kind: str) -> float:
    if kind == "solid":
        return float(rng.uniform(-40, 70))
    return float(rng.uniform(-680, -450))


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise blurred in-plane like reconstructed CT noise, scaled to `sigma` HU."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, sigma=(0.0, 0.8, 0.8), output=noise)
    noise *= sigma / (float(noise.std()) + 1e-6)
    return noise
