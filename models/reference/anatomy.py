"""Procedural chest anatomy for the phantom: body, fat, muscle, lungs, heart, spine, ribs, vessels.

All lengths are mm. Axial planes are (y, x) with y growing posteriorly; z grows caudally from the
top of a virtual chest, so a slab of a longer chest is the same anatomy seen through a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.reference.shapes import Grid, ramp, tube_segment

AIR_HU = -1000.0
FAT_HU = -100.0
MUSCLE_HU = 40.0
LUNG_HU = -860.0
BONE_HU = 450.0
MAX_VESSEL_SEGMENTS = 2500


@dataclass(frozen=True)
class Lung:
    centre_x: float
    centre_y: float
    axis_x: float
    axis_y: float


@dataclass(frozen=True)
class Chest:
    """Anatomy drawn once per phantom; rendering reads it, slab or whole."""

    centre: tuple[float, float]
    body_axes: tuple[float, float]
    fat_mm: float
    rib_axes: tuple[float, float]
    lungs: tuple[Lung, Lung]
    apex_z: float
    base_z: float
    dome_mm: float
    heart: tuple[float, float, float, float]
    vessel_hu: float
    rib_levels: tuple[float, ...]


def draw_chest(rng: np.random.Generator, centre: tuple[float, float], length: float) -> Chest:
    body_x, body_y = rng.uniform(140, 175), rng.uniform(95, 125)
    fat = rng.uniform(6, 22)
    rib_x, rib_y = body_x - fat - 12, body_y - fat - 12
    inner = rng.uniform(22, 32)
    outer = rib_x - 7
    lung_y_low, lung_y_high = -(rib_y - 16), rib_y - 9
    lung = (
        (outer + inner) / 2,
        (lung_y_low + lung_y_high) / 2,
        (outer - inner) / 2,
        (lung_y_high - lung_y_low) / 2,
    )
    apex = rng.uniform(0.02, 0.08) * length
    base = length - rng.uniform(0.02, 0.1) * length
    heart = (rng.uniform(5, 25), rng.uniform(-35, -15), rng.uniform(45, 60), rng.uniform(40, 50))
    spacing = rng.uniform(22, 28)
    return Chest(
        centre=centre,
        body_axes=(body_x, body_y),
        fat_mm=fat,
        rib_axes=(rib_x, rib_y),
        lungs=(Lung(-lung[0], lung[1], lung[2], lung[3]), Lung(lung[0], lung[1], lung[2], lung[3])),
        apex_z=apex,
        base_z=base,
        dome_mm=rng.uniform(30, 55),
        heart=heart,
        vessel_hu=float(rng.uniform(20, 220)),
        rib_levels=tuple(np.arange(apex - 10, base - 30, spacing)),
    )


def _ellipse_distance(y: np.ndarray, x: np.ndarray, axes: tuple[float, float]) -> np.ndarray:
    rho = np.sqrt((x / axes[0]) ** 2 + (y / axes[1]) ** 2)
    result: np.ndarray = (rho - 1.0) * min(axes)
    return result


def lung_occupancy(
    chest: Chest, z: np.ndarray, y: np.ndarray, x: np.ndarray, grid: Grid
) -> np.ndarray:
    """Occupancy of both lungs (cardiac notch and diaphragm dome included), on broadcast axes."""
    t = (z - chest.apex_z) / (chest.base_z - chest.apex_z)
    profile = np.sqrt(np.clip(t / 0.5, 1e-4, 1.0))
    in_plane, slab_width = grid.spacing[1], grid.spacing[0]
    total = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape), dtype=np.float32)
    for lung in chest.lungs:
        dy, dx = y - chest.centre[1] - lung.centre_y, x - chest.centre[0] - lung.centre_x
        rho = np.sqrt((dx / (lung.axis_x * profile)) ** 2 + (dy / (lung.axis_y * profile)) ** 2)
        plane = ramp((rho - 1.0) * lung.axis_x * profile, in_plane)
        bottom = chest.base_z - chest.dome_mm * np.clip(1.0 - rho**2, 0.0, 1.0)
        vertical = ramp(z - bottom, slab_width) * ramp(chest.apex_z - z, slab_width)
        total = np.maximum(total, plane * vertical)
    hx, hy, ha, hb = chest.heart
    heart = ramp(
        _ellipse_distance(y - chest.centre[1] - hy, x - chest.centre[0] - hx, (ha, hb)), in_plane
    )
    heart = heart * (t > 0.45)
    result: np.ndarray = total * (1.0 - heart)
    return result


def render_tissue(chest: Chest, grid: Grid, z_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """HU of body, fat, muscle, heart, spine and lungs; returns (hu, lung occupancy)."""
    z, y, x = grid.coordinates(tuple(slice(0, n) for n in grid.shape))  # type: ignore[arg-type]
    z = z + z_offset
    cy, cx = y - chest.centre[1], x - chest.centre[0]
    in_plane = grid.spacing[1]
    body = ramp(_ellipse_distance(cy, cx, chest.body_axes), in_plane)
    inner_axes = (chest.body_axes[0] - chest.fat_mm, chest.body_axes[1] - chest.fat_mm)
    muscle = ramp(_ellipse_distance(cy, cx, inner_axes), in_plane)
    hu = np.full(grid.shape, AIR_HU, dtype=np.float32)
    hu += (FAT_HU - AIR_HU) * body
    hu += (MUSCLE_HU - FAT_HU) * muscle
    spine_y = chest.rib_axes[1] + 4.0
    vertebra = ramp(np.sqrt(cx**2 + (cy - spine_y + 18.0) ** 2) - 17.0, in_plane)
    disc = 0.5 + 0.5 * np.cos(2 * np.pi * z / 26.0) > 0.12
    hu += (np.where(disc, 250.0, 70.0) - MUSCLE_HU) * vertebra
    lungs = lung_occupancy(chest, z, y, x, grid)
    with_lungs: np.ndarray = hu * (1.0 - lungs) + LUNG_HU * lungs
    return with_lungs, lungs


def rib_segments(chest: Chest) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Ribs as tube segments: from the spine round the chest wall, sloping down anteriorly."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    angles = np.linspace(0.12 * np.pi, 0.85 * np.pi, 16)
    for level in chest.rib_levels:
        for side in (-1.0, 1.0):
            points = np.stack(
                [
                    level + 30.0 * (angles / np.pi) ** 1.5,
                    chest.centre[1] + chest.rib_axes[1] * np.cos(angles) + 4.0,
                    chest.centre[0] + side * (chest.rib_axes[0] + 3.0) * np.sin(angles),
                ],
                axis=1,
            )
            segments.extend((points[i], points[i + 1], 4.0) for i in range(len(points) - 1))
    return segments


def vessel_segments(
    chest: Chest, rng: np.random.Generator, grid: Grid
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Branching vessel trees from each hilum outwards, kept inside the lungs."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    mid_z = chest.apex_z + 0.45 * (chest.base_z - chest.apex_z)
    for lung in chest.lungs:
        side = np.sign(lung.centre_x)
        hilum = np.array(
            [
                mid_z,
                chest.centre[1] + lung.centre_y - 5.0,
                chest.centre[0] + lung.centre_x - side * 0.55 * lung.axis_x,
            ]
        )
        for _ in range(7):
            direction = rng.normal(size=3) * np.array([1.6, 0.8, 0.5])
            direction[2] = side * abs(direction[2]) + side * 0.3
            _grow(chest, rng, grid, hilum, direction, rng.uniform(3.5, 5.5), 0, segments)
    return segments


def _inside_lung(chest: Chest, point: np.ndarray, grid: Grid) -> bool:
    z, y, x = (np.array([[[v]]], dtype=np.float32) for v in point)
    return bool(lung_occupancy(chest, z, y, x, grid)[0, 0, 0] > 0.5)


def _grow(
    chest: Chest,
    rng: np.random.Generator,
    grid: Grid,
    start: np.ndarray,
    direction: np.ndarray,
    radius: float,
    depth: int,
    segments: list[tuple[np.ndarray, np.ndarray, float]],
) -> None:
    if radius < 0.5 or depth > 12 or len(segments) > MAX_VESSEL_SEGMENTS:
        return
    direction = direction / np.linalg.norm(direction)
    length = rng.uniform(8.0, 18.0) * np.sqrt(radius / 2.0) + 4.0
    for _ in range(4):
        end = start + direction * length
        if depth <= 1 or _inside_lung(chest, end, grid):
            break
        direction = direction + 0.8 * rng.normal(size=3)
        direction = direction / np.linalg.norm(direction)
    else:
        return
    segments.append((start, end, radius))
    for _ in range(2):
        bend = rng.normal(size=3)
        bend -= (bend @ direction) * direction
        child = direction + 0.7 * bend / (np.linalg.norm(bend) + 1e-9) * rng.uniform(0.4, 1.0)
        _grow(chest, rng, grid, end, child, radius * rng.uniform(0.68, 0.82), depth + 1, segments)


def render_tubes(
    grid: Grid, segments: list[tuple[np.ndarray, np.ndarray, float]], z_offset: float
) -> np.ndarray:
    """Union occupancy of tube segments (given in chest coordinates) on the grid."""
    occupancy = np.zeros(grid.shape, dtype=np.float32)
    shift = np.array([z_offset, 0.0, 0.0])
    for start, end, radius in segments:
        drawn = tube_segment(grid, start - shift, end - shift, radius)
        if drawn is not None:
            box, part = drawn
            np.maximum(occupancy[box], part, out=occupancy[box])
    return occupancy
