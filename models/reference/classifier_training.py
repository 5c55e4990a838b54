"""Training stage 2: mine the detector's candidates on fresh phantoms, train the classifier."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.pipelines.blob_prefilter import BlobPrefilter
from models.pipelines.blobs import BlobGates, find_blobs
from models.pipelines.candidates import (
    BLOB_LABEL,
    Candidate,
    blob_candidates,
    classifier_inputs,
    find_candidates,
)
from models.pipelines.inference import Runtime, autocast, sliding_window_probability
from models.pipelines.symmetry import View
from models.reference.network import (
    DETECTOR_OVERLAP,
    DETECTOR_WINDOW,
    WORKING_SPACING,
    CandidateClassifier,
)
from models.reference.phantom import BAND_SHARES
from models.reference.samples import on_working_grid, training_phantom

log = logging.getLogger(__name__)
MINING_THRESHOLD = 0.3
MINING_MIN_VOLUME_MM3 = 3.0


@dataclass(frozen=True)
class Mined:
    """Classifier inputs, labels (1 = a true nodule) and which candidates are blobs."""

    inputs: torch.Tensor
    labels: torch.Tensor
    blobs: torch.Tensor  # bool per candidate

    def detector_candidates(self) -> Mined:
        keep = ~self.blobs
        return Mined(self.inputs[keep], self.labels[keep], self.blobs[keep])

    def save(self, path: Path) -> None:
        """Exactly the tensors mined (float32, not rounded to save space): 20,725 candidates
        take 5.4 GB."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dataclasses.asdict(self), path)

    @classmethod
    def load(cls, path: Path) -> Mined:
        return cls(**torch.load(path, weights_only=True))


@dataclass(frozen=True)
class MiningOptions:
    """What `mine` proposes: slabs of `nodules_per_slab` nodules (None: the usual 1-6; more
    give more true candidates for the same mining time) of sizes drawn by `band_shares`, blobs
    passing `gates` (and `prefilter`, when given, as in the pipeline), and of the false
    candidates of a slab at most `max_negatives`, drawn at random (None: all)."""

    nodules_per_slab: int | None = None
    gates: BlobGates = field(default_factory=BlobGates)
    max_negatives: int | None = None
    band_shares: tuple[float, float, float] = BAND_SHARES
    prefilter: BlobPrefilter | None = None


def mine(
    detector: nn.Module, seeds: range, runtime: Runtime, options: MiningOptions = MiningOptions()
) -> Mined:
    """The detector's and the blob filter's candidates on training slabs (`MiningOptions`),
    in order of discovery."""
    inputs, labels, blobs = [], [], []
    for count, seed in enumerate(seeds, start=1):
        phantom = training_phantom(seed, options.nodules_per_slab, options.band_shares)
        sample = on_working_grid(phantom)
        probability = sliding_window_probability(
            detector, sample.image, runtime, DETECTOR_WINDOW, DETECTOR_OVERLAP
        )
        lungs = torch.nn.functional.max_pool3d(sample.lungs[None, None].float(), 7, 1, 3)[0, 0] > 0
        candidates, components = find_candidates(
            probability.numpy(),
            lungs.numpy(),
            WORKING_SPACING,
            MINING_THRESHOLD,
            MINING_MIN_VOLUME_MM3,
        )
        image = sample.image.numpy()
        found = find_blobs(image, lungs.numpy(), options.gates)
        if options.prefilter is not None:
            found = options.prefilter.select(found, image, probability.numpy())
        candidates += blob_candidates(found, probability.numpy(), components)
        target = sample.target.numpy() > 0
        truth = [is_nodule(c, target, components) for c in candidates]
        kept = keep_negatives(truth, options.max_negatives, np.random.default_rng(seed))
        candidates = [candidates[i] for i in kept]
        labels += [truth[i] for i in kept]
        blobs += [c.label == BLOB_LABEL for c in candidates]
        inputs.append(classifier_inputs(sample.image, probability, candidates))
        if count % 20 == 0:
            log.info(
                "mined %d phantoms, %d candidates, %d true", count, len(labels), int(sum(labels))
            )
    return Mined(torch.cat(inputs), torch.tensor(labels), torch.tensor(blobs, dtype=torch.bool))


def keep_negatives(
    truth: list[float], max_negatives: int | None, rng: np.random.Generator
) -> list[int]:
    """Indices of every true candidate and of at most `max_negatives` false ones (drawn by
    `rng`), in their order."""
    negatives = [i for i, value in enumerate(truth) if not value]
    if max_negatives is not None and len(negatives) > max_negatives:
        dropped = set(rng.choice(negatives, len(negatives) - max_negatives, replace=False).tolist())
        return [i for i in range(len(truth)) if i not in dropped]
    return list(range(len(truth)))


def is_nodule(candidate: Candidate, target: np.ndarray, components: np.ndarray) -> float:
    """1.0 if a detector component overlaps a nodule, or a blob's centre region touches one."""
    if candidate.label != BLOB_LABEL:
        return float(target[candidate.box][components[candidate.box] == candidate.label].any())
    reach = max(1, round(candidate.radius_mm / 2))
    region = tuple(slice(max(c - reach, 0), c + reach + 1) for c in candidate.peak)
    return float(target[region].any())


def augment(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One of the 16 symmetry views (`models.pipelines.symmetry`), drawn at random: a flip or
    not on every axis, then an in-plane transpose or not; nodules have no handedness."""
    z, y, x, transpose = (bool(rng.uniform() < 0.5) for _ in range(4))
    return View((z, y, x), transpose).apply(batch)


def train_classifier(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    seed: int,
    spatial: bool = False,
    start: nn.Module | None = None,
    max_lr: float = 1e-3,
    bf16: bool = False,
) -> tuple[nn.Module, dict[str, float]]:
    """Train a classifier (with the spatial head or not) from scratch, or go on training
    `start` (fine-tuning: with a lower `max_lr`); `bf16`: under CPU bf16 autocast (about 1.6
    times faster where the CPU has bf16 kernels; the shipped classifier was trained in fp32)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = start if start is not None else CandidateClassifier(spatial)
    precision = Runtime(torch.device("cpu"), torch.bfloat16 if bf16 else None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=max_lr, total_steps=steps, pct_start=0.1
    )
    positives = float(labels.sum())
    pos_weight = torch.tensor((len(labels) - positives) / max(positives, 1.0))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    started, running = time.perf_counter(), 0.0
    model.train()
    for step in range(1, steps + 1):
        pick = torch.from_numpy(rng.integers(0, len(labels), size=32))
        optimiser.zero_grad(set_to_none=True)
        with autocast(precision):
            logits = model(augment(inputs[pick], rng))
        loss = loss_fn(logits.float(), labels[pick])
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.98 * running + 0.02 * float(loss.detach()) if step > 1 else float(loss.detach())
        if step % 100 == 0:
            log.info("classifier step %d/%d loss %.4f", step, steps, running)
    model.eval()
    return model, {
        "final_loss": running,
        "seconds": time.perf_counter() - started,
        "candidates": float(len(labels)),
        "true_candidates": positives,
    }
