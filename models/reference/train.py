"""Reproduce the shipped reference weights: `python -m models.reference.train [--seed N]`.

Stage 1 trains the U-Net detector on random 64 mm patches of freshly generated phantom slabs
(positive-biased sampling, Dice + cross-entropy). For experiments, `--detector-fine-tune-steps
N` then fine-tunes it (`--stage detector-fine-tune` alone: from the weights in place) with each
nodule patch drawn for a nodule picked uniformly, so that 3-6 mm nodules are not outnumbered by
the voxels of large ones (session 13: not better after stage 2, not shipped). Stage 2 (`--stage
classifiers`) runs the trained detector and the blob filter (`models.pipelines.blobs`) once over
further phantoms and trains the candidate classifier on what they propose (both kinds; since
0.5.1 it judges the detector's candidates too, and the detector's own classifier is no longer
trained: `--only classifier` still trains one, for experiments). The mined slabs carry 12
nodules each (`--classifier-nodules`): four times the true candidates of the usual 1-6 for the
same mining time (release 0.4.0).

Stage 3 (`--stage prefilter`, not part of `all`: run it after the thresholds are tuned, since it
keeps the true nodules that the blob threshold in reference.json lets through) fits the blob
prefilter (`models.reference.prefilter_fitting`) on `--prefilter-phantoms` whole-chest phantoms
and writes it to reference.json.

For experiments: `--weights DIR` writes somewhere else than the shipped weights (copy them there
first: stage 2 reads the detector from it), `--mined FILE` saves stage 2's mined candidates
(5.4 GB for the default 200 slabs, float32 as mined) or, when the file exists, trains from it
without mining, `--only` trains one classifier.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from models.pipelines.blob_prefilter import BlobPrefilter
from models.pipelines.blobs import BlobGates
from models.pipelines.inference import cpu_runs_bf16, pick_runtime, prepare
from models.pipelines.lung_nodule import LungNodulePipeline, Thresholds
from models.reference import WEIGHTS_DIR
from models.reference.classifier_training import (
    Mined,
    MiningOptions,
    mine,
    train_classifier,
)
from models.reference.detector_training import detector_phases, train_detector
from models.reference.network import (
    DETECTOR_OVERLAP,
    DETECTOR_WINDOW,
    WORKING_SPACING,
    build_detector,
    load_classifier,
    load_weights,
    save_weights,
)
from models.reference.phantom import BAND_SHARES, GENERATOR_VERSION, band_shares_with, generate
from models.reference.prefilter_fitting import collect, fit, fit_report
from models.reference.samples import TRAINING_SEED_LIMIT

log = logging.getLogger(__name__)
RECIPE_VERSION = "0.5.7"
"""Raised when the training recipe or what the pipeline makes of the weights changes (0.4.1:
the same weights as 0.4.0, lesion outlines redrawn at half maximum; 0.5.0: the blob candidates'
classifier keeps where its features are, a spatial head; 0.5.1: that classifier judges the
detector's candidates too, and the detector candidates' own one is gone; 0.5.2: the detector runs
in 96-voxel windows, in the pipeline and when mining, while the shipped classifier is 0.5.1's,
mined in the old windows; 0.5.3: a detector component a third inside the lungs is a candidate
even with its centre outside; 0.5.4: the detector's windows overlap by an eighth, not a quarter,
the thresholds kept; 0.5.5: the classifier's confidence is its mean over four symmetry views of
the cube where one view gives 0.5 or more, the thresholds re-tuned; 0.5.6: wider blob gates,
response 0.08 and roundness 0.025, the thresholds re-tuned; 0.5.7: a blob prefilter fitted in
stage 3, the rest as 0.5.6); the seed is appended."""


STAGES = ("all", "detector", "detector-fine-tune", "classifiers", "prefilter")
CLASSIFIERS = ("classifier", "blob_classifier")
"""By weight file name: a classifier trained on the detector's candidates only (shipped until
0.5.0; `--only classifier` for experiments) and one trained on both kinds (the shipped one)."""
SHIPPED_CLASSIFIERS = ("blob_classifier",)


def run_classifier_stage(
    args: argparse.Namespace, steps: dict[str, int], which: tuple[str, ...]
) -> dict[str, object]:
    """Stage 2: mine the detector's and the blob filter's candidates once (or read them from
    `args.mined`, where a first run saves them), then train the classifiers in `which`."""
    report: dict[str, object] = {
        "mining_blob_gates": [args.mining_response, args.mining_roundness],
        "mining_negatives_per_slab": args.mining_negatives,
        "mining_small_share": args.mining_small_share,
        "mining_prefilter": args.mining_prefilter,
        "classifier_peak_lr": args.classifier_lr,
        "classifier_bf16": args.classifier_bf16,
    }
    if args.mined is not None and args.mined.exists():
        mined = Mined.load(args.mined)
    else:
        detector = load_weights(build_detector(), args.weights / "detector.pt")
        first = (args.seed * 10_000 + 5_000) % TRAINING_SEED_LIMIT
        runtime = pick_runtime()
        started = time.perf_counter()
        seeds = range(first, first + args.classifier_phantoms)
        share = args.mining_small_share
        options = MiningOptions(
            args.classifier_nodules or None,
            BlobGates(args.mining_response, args.mining_roundness),
            args.mining_negatives,
            BAND_SHARES if share is None else band_shares_with(share),
            _shipped_prefilter(args.weights) if args.mining_prefilter else None,
        )
        mined = mine(prepare(detector, runtime), seeds, runtime, options)
        report["mining_seconds"] = time.perf_counter() - started
        if args.mined is not None:
            mined.save(args.mined)
    for key in which:
        data = mined.detector_candidates() if key == "classifier" else mined
        spatial = key == "blob_classifier" or args.spatial_classifier
        start = load_classifier(args.weights / f"{key}.pt") if args.fine_tune else None
        model, trained = train_classifier(
            data.inputs,
            data.labels,
            steps[key],
            args.seed,
            spatial,
            start,
            args.classifier_lr,
            args.classifier_bf16,
        )
        save_weights(model.state_dict(), args.weights / f"{key}.pt")
        origin = {"fine_tuned_from": _version(args.weights)} if args.fine_tune else {}
        report[key] = {**trained, "generator_version": GENERATOR_VERSION, **origin}
    return report


def _shipped_prefilter(weights: Path) -> BlobPrefilter:
    values = json.loads((weights / "reference.json").read_text()).get("blob_prefilter")
    if values is None:
        raise SystemExit(f"--mining-prefilter: {weights / 'reference.json'} has no blob_prefilter")
    return BlobPrefilter.from_json(values)


def run_prefilter_stage(args: argparse.Namespace) -> tuple[BlobPrefilter, dict[str, object]]:
    """Stage 3: the blob prefilter fitted on whole chests of seeds of its own."""
    started = time.perf_counter()
    pipeline = LungNodulePipeline(args.weights, blob_prefilter=False)
    first = (args.seed * 10_000 + 8_000) % TRAINING_SEED_LIMIT
    seeds = range(first, first + args.prefilter_phantoms)
    table = collect(pipeline, (generate(seed) for seed in seeds))
    blob_threshold = pipeline.thresholds.blob_classifier
    prefilter = fit(table, blob_threshold)
    report: dict[str, object] = {
        "phantoms": args.prefilter_phantoms,
        "first_seed": first,
        "runtime": pipeline.runtime.name,
        "blob_threshold": blob_threshold,
        **fit_report(table, prefilter, blob_threshold),
        "seconds": time.perf_counter() - started,
    }
    return prefilter, report


def _version(weights: Path) -> str:
    return str(json.loads((weights / "reference.json").read_text())["version"])


def write_metadata(
    args: argparse.Namespace, report: dict[str, object], prefilter: BlobPrefilter | None
) -> None:
    """reference.json: what the weights are, how they were made (and the blob prefilter, when
    fitted, else the one already there); evaluation adds the metrics."""
    path = args.weights / "reference.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    metadata = {
        "name": "lung-nodule-reference",
        "version": f"{RECIPE_VERSION}+seed{args.seed}",
        "notice": "Trained on synthetic phantoms only. Not for diagnostic use.",
        "architecture": {
            "detector": "monai UNet 3D, channels 16-256, strides 2x4, 1 residual unit",
            "blob_classifier": "CandidateClassifier: 3 conv blocks on a 2-channel 32^3 cube, a"
            " spatial head (flattened 4^3 features), trained on detector and blob candidates;"
            " it scores both kinds",
            "blob_filter": "multi-scale LoG peaks (sigma 1-3.2 mm) with negative Hessian; gates:"
            " the thresholds' blob_response and blob_roundness (0.08 / 0.025 since 0.5.6; the"
            " classifier was mined through 0.15 / 0.04)",
            "blob_prefilter": "a logistic score of 6 numbers per blob (filter response and"
            " roundness, scale, detector probability and image near it); a blob under its"
            " threshold does not reach the classifier",
            "classifier_scoring": "the mean over 4 symmetry views (flips, in-plane transpose)"
            " for a candidate whose own view scores 0.5 or more",
        },
        "preprocessing": {
            "working_spacing_mm": list(WORKING_SPACING),
            "inference_window": list(DETECTOR_WINDOW),
            "inference_overlap": DETECTOR_OVERLAP,
            "hu_window": [-1000, 400],
            "scaling": "clip then map to [0, 1]",
            "crop": "lung bounding box from a 2 mm threshold lung mask, 10 mm margin",
        },
        "training": {**previous.get("training", {}), **report},
        "thresholds": previous.get("thresholds", dataclasses.asdict(Thresholds())),
    }
    if prefilter is not None:
        metadata["blob_prefilter"] = prefilter.to_json()
    for key in ("blob_prefilter", "validation", "evaluation", "notes"):
        if key in previous and key not in metadata:
            metadata[key] = previous[key]
    path.write_text(json.dumps(metadata, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--detector-steps", type=int, default=6000)
    parser.add_argument(
        "--detector-fine-tune-steps",
        type=int,
        default=0,
        help="then this many steps with nodules drawn uniformly (an experiment, not shipped)",
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classifier-phantoms", type=int, default=200)
    parser.add_argument("--classifier-steps", type=int, default=2000)
    parser.add_argument("--blob-classifier-steps", type=int, default=3000)
    parser.add_argument(
        "--classifier-nodules",
        type=int,
        default=12,
        help="nodules per slab mined for the classifiers (0: 1-6, as the detector's slabs)",
    )
    parser.add_argument("--scratch", type=Path, default=Path("scratch/train"))
    parser.add_argument("--stage", choices=STAGES, default="all")
    parser.add_argument("--only", choices=CLASSIFIERS, help="train one classifier of stage 2")
    parser.add_argument(
        "--mined",
        type=Path,
        help="stage 2's mined candidates: read from this file if it exists, else saved there",
    )
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="where weights go")
    parser.add_argument(
        "--mining-response",
        type=float,
        default=BlobGates.response,
        help="the blob filter's response gate when mining (default: the shipped classifier's)",
    )
    parser.add_argument(
        "--mining-roundness",
        type=float,
        default=BlobGates.roundness,
        help="the blob filter's roundness gate when mining (default: the shipped classifier's)",
    )
    parser.add_argument(
        "--mining-negatives",
        type=int,
        help="at most this many false candidates a slab, drawn at random (default: all)",
    )
    parser.add_argument(
        "--mining-small-share",
        type=float,
        help="the chance that a mined slab's nodule is 3-6 mm (default: the generator's 0.4)",
    )
    parser.add_argument(
        "--mining-prefilter",
        action="store_true",
        help="mine only the blobs that the blob prefilter in --weights passes, as the pipeline",
    )
    parser.add_argument(
        "--fine-tune",
        action="store_true",
        help="go on training the classifiers in --weights instead of starting afresh",
    )
    parser.add_argument("--classifier-lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument(
        "--classifier-bf16",
        action="store_true",
        help="train the classifiers under CPU bf16 autocast (faster; the shipped ones: fp32)",
    )
    parser.add_argument(
        "--prefilter-phantoms",
        type=int,
        default=60,
        help="whole-chest phantoms the blob prefilter is fitted on (stage prefilter)",
    )
    parser.add_argument(
        "--spatial-classifier",
        action="store_true",
        help="the spatial head for the detector candidates' classifier too (not shipped)",
    )
    args = parser.parse_args()
    if args.stage == "detector-fine-tune" and args.detector_fine_tune_steps == 0:
        parser.error("--stage detector-fine-tune needs --detector-fine-tune-steps N")
    if args.classifier_bf16 and not cpu_runs_bf16():
        parser.error("--classifier-bf16: this CPU has no bf16 kernels, where bf16 is slower")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    args.scratch.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"seed": args.seed, "batch": args.batch}
    phases = detector_phases(args.seed, args.detector_steps, args.detector_fine_tune_steps)
    for phase in phases:
        if phase.steps and args.stage in ("all", phase.name.replace("_", "-")):
            report[phase.name] = train_detector(
                args.seed, phase, args.batch, args.scratch, args.weights
            )
    if args.stage in ("all", "classifiers"):
        steps = {"classifier": args.classifier_steps, "blob_classifier": args.blob_classifier_steps}
        which = (args.only,) if args.only else SHIPPED_CLASSIFIERS
        report.update(run_classifier_stage(args, steps, which))
        report["classifier_nodules_per_slab"] = args.classifier_nodules
        report["classifier_phantoms"] = args.classifier_phantoms
        report.update({f"{key}_steps": steps[key] for key in which})
    prefilter = None
    if args.stage == "prefilter":
        prefilter, report["blob_prefilter"] = run_prefilter_stage(args)
    (args.scratch / f"train-{args.stage}.json").write_text(json.dumps(report, indent=2))
    write_metadata(args, report, prefilter)


if __name__ == "__main__":
    main()
