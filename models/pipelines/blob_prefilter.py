"""A cheap first look at blob candidates, before the classifier: a logistic score of a few
numbers about each blob, and a threshold under which a blob is not worth the classifier's time.

The blob filter's gates are wide enough (since 0.5.6) to give faint ground-glass nodules a
candidate, at about 780 blobs a chest, nearly all of them vessel crossings and bends; scoring
each with the candidate classifier cost 3-5 s a chest. The numbers (`blob_features`): the
filter's response and roundness (logarithms), the blob's scale, the detector's largest
probability near it (logarithm), the scaled image at its centre and the mean around it. The
weights are fitted to predict which blobs the classifier scores highly, and the threshold lies a
margin under the lowest score of the fitting phantoms' true nodules that the classifier found
(`models.reference.prefilter_fitting`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.pipelines.blobs import Blob

FEATURES = (
    "log_response",
    "log_roundness",
    "sigma_mm",
    "log_probability_near",
    "image_at_centre",
    "image_near",
)
NEAR = 3  # voxels each side of the centre: a 7 mm cube on the working grid
PROBABILITY_FLOOR = 1e-4  # keeps the logarithm of a zero probability finite


@dataclass(frozen=True)
class BlobPrefilter:
    """Standardisation (mean, scale), logistic weights and bias per `FEATURES`, a threshold."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def __post_init__(self) -> None:
        lengths = {len(self.mean), len(self.scale), len(self.weights)}
        if lengths != {len(FEATURES)}:
            raise ValueError(f"a blob prefilter needs {len(FEATURES)} values per part: {FEATURES}")

    @classmethod
    def from_json(cls, values: dict[str, object]) -> BlobPrefilter:
        return cls(
            mean=tuple(_floats(values["mean"])),
            scale=tuple(_floats(values["scale"])),
            weights=tuple(_floats(values["weights"])),
            bias=float(values["bias"]),  # type: ignore[arg-type]
            threshold=float(values["threshold"]),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(FEATURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
        }

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The logit per row of `features` (n, len(FEATURES))."""
        standard = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        result: np.ndarray = standard @ np.asarray(self.weights) + self.bias
        return result

    def select(
        self, blobs: Sequence[Blob], image: np.ndarray, probability: np.ndarray
    ) -> list[Blob]:
        """The blobs whose score reaches the threshold."""
        if not blobs:
            return []
        keep = self.scores(blob_features(blobs, image, probability)) >= self.threshold
        return [blob for blob, kept in zip(blobs, keep, strict=True) if kept]


def blob_features(blobs: Sequence[Blob], image: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """(n, len(FEATURES)) for blobs on the working grid of `image` and `probability`."""
    rows = []
    for blob in blobs:
        near = tuple(slice(max(c - NEAR, 0), c + NEAR + 1) for c in blob.centre)
        rows.append(
            (
                math.log(blob.response),
                math.log(blob.roundness),
                blob.sigma,
                math.log(float(probability[near].max()) + PROBABILITY_FLOOR),
                float(image[blob.centre]),
                float(image[near].mean()),
            )
        )
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


def _floats(values: object) -> list[float]:
    assert isinstance(values, list)
    return [float(v) for v in values]
