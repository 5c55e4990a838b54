"""Training stage 1: the U-Net detector on random patches of freshly generated phantom slabs,
from scratch or (an experiment) fine-tuned with nodules drawn uniformly."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from monai.losses import DiceCELoss
from torch.utils.data import DataLoader, IterableDataset

from models.pipelines.inference import Runtime, autocast, channels_last, cpu_runs_bf16
from models.reference.network import DETECTOR_PATCH, build_detector, load_weights, save_weights
from models.reference.phantom import GENERATOR_VERSION
from models.reference.samples import TRAINING_SEED_LIMIT, patches

log = logging.getLogger(__name__)


class PatchStream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, first_seed: int, per_phantom: int, per_nodule: bool) -> None:
        self.first_seed = first_seed
        self.per_phantom = per_phantom
        self.per_nodule = per_nodule

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        torch.set_num_threads(1)
        seeds = (s % TRAINING_SEED_LIMIT for s in itertools.count(self.first_seed))
        for image, target in patches(seeds, DETECTOR_PATCH, self.per_phantom, self.per_nodule):
            yield image[None], target[None].long()


@dataclasses.dataclass(frozen=True)
class DetectorPhase:
    """One pass of detector training: from scratch with patches on random nodule voxels, or
    (`fine_tune`) from the weights already in place, with a nodule drawn uniformly per patch so
    that 3-6 mm nodules are seen as often as large ones (an experiment: docs/models.md)."""

    name: str
    steps: int
    max_lr: float
    first_seed: int
    fine_tune: bool


def detector_phases(seed: int, steps: int, fine_tune_steps: int) -> tuple[DetectorPhase, ...]:
    return (
        DetectorPhase("detector", steps, 2e-3, seed * 10_000, fine_tune=False),
        DetectorPhase(
            "detector_fine_tune",
            fine_tune_steps,
            5e-4,
            (seed * 10_000 + 7_000) % TRAINING_SEED_LIMIT,
            fine_tune=True,
        ),
    )


def train_detector(
    seed: int, phase: DetectorPhase, batch: int, scratch: Path, weights: Path
) -> dict[str, object]:
    torch.manual_seed(seed)
    steps = phase.steps
    model = build_detector()
    if phase.fine_tune:
        model = load_weights(model, weights / "detector.pt")
    model = channels_last(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=phase.max_lr, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=phase.max_lr, total_steps=steps, pct_start=0.05
    )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    stream = DataLoader(
        PatchStream(phase.first_seed, 24, per_nodule=phase.fine_tune),
        batch_size=batch,
        num_workers=1,
        prefetch_factor=8,
    )
    runtime = Runtime(torch.device("cpu"), torch.bfloat16 if cpu_runs_bf16() else None)
    started, running = time.perf_counter(), 0.0
    model.train()
    for step, (image, target) in enumerate(itertools.islice(stream, steps), start=1):
        optimiser.zero_grad(set_to_none=True)
        with autocast(runtime):  # bf16 only where the CPU has bf16 kernels
            output = model(image.to(memory_format=torch.channels_last_3d))
        loss = loss_fn(output.float(), target)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 100 == 0:
            log.info(
                "%s step %d/%d loss %.4f %.0fs",
                phase.name,
                step,
                steps,
                running,
                time.perf_counter() - started,
            )
        if step % 500 == 0:
            torch.save(model.state_dict(), scratch / f"{phase.name}-checkpoint.pt")
    save_weights(model.state_dict(), weights / "detector.pt")
    return {
        "steps": steps,
        "max_lr": phase.max_lr,
        "final_loss": running,
        "seconds": time.perf_counter() - started,
        "generator_version": GENERATOR_VERSION,
        "precision": runtime.name,
    }
