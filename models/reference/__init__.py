"""The reference lung-nodule model: phantom generator, training, evaluation, committed weights."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""The committed weights and their `reference.json` description (name, version, thresholds)."""
