"""Evaluate the reference pipeline on held-out phantoms: `python -m models.reference.evaluate`.

Prints voxel Dice, lesion-level sensitivity by size band and false positives per scan, and writes
them to a JSON file. `--split validation --tune` instead picks the classifier threshold on the
validation seeds (never the evaluation seeds) and stores it in the weights' metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from models.pipelines.lung_nodule import WEIGHTS_DIR, LungNodulePipeline
from models.reference.dicom_series import phantom_volume
from models.reference.metrics import CaseTable, outcome, summarise, tabulate
from models.reference.phantom import generate
from models.reference.samples import EVALUATION_SEED_BASE, VALIDATION_SEED_BASE

log = logging.getLogger(__name__)
MAX_FALSE_POSITIVES_PER_SCAN = 0.4


def run_cases(pipeline: LungNodulePipeline, seeds: range) -> tuple[list[CaseTable], list[float]]:
    tables, seconds = [], []
    for seed in seeds:
        phantom = generate(seed)
        started = time.perf_counter()
        findings = pipeline.run(phantom_volume(phantom))
        seconds.append(time.perf_counter() - started)
        nodules = [(n.diameter_mm, n.kind, n.placement) for n in phantom.nodules]
        confidences = [lesion.confidence for lesion in findings.lesions]
        tables.append(tabulate(phantom.labels, findings.lesion_map, confidences, nodules))
        log.info(
            "seed %d: %s, %d nodules, %d lesions, %.1fs",
            seed,
            phantom.hu.shape,
            len(nodules),
            len(confidences),
            seconds[-1],
        )
    return tables, seconds


def choose_threshold(tables: list[CaseTable]) -> tuple[float, dict[str, object]]:
    """The lowest threshold whose false positives per scan stay within the budget."""
    for threshold in np.round(np.arange(0.05, 1.0, 0.05), 2):
        summary = summarise([outcome(t, float(threshold)) for t in tables])
        if float(summary["false_positives_per_scan"]) <= MAX_FALSE_POSITIVES_PER_SCAN:  # type: ignore[arg-type]
            return float(threshold), summary
    return 0.95, summarise([outcome(t, 0.95) for t in tables])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--split", choices=["evaluation", "validation"], default="evaluation")
    parser.add_argument(
        "--tune", action="store_true", help="choose the classifier threshold (validation only)"
    )
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--output", type=Path, default=Path("scratch/evaluation.json"))
    parser.add_argument(
        "--record", action="store_true", help="store the summary in the weights' metadata"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.tune and args.split != "validation":
        parser.error("--tune only on the validation split")
    base = VALIDATION_SEED_BASE if args.split == "validation" else EVALUATION_SEED_BASE
    pipeline = LungNodulePipeline(args.weights)
    if args.tune:
        pipeline.thresholds = dataclasses.replace(pipeline.thresholds, classifier=0.0)
    tables, seconds = run_cases(pipeline, range(base, base + args.cases))
    metadata_path = args.weights / "reference.json"
    metadata = json.loads(metadata_path.read_text())
    if args.tune:
        threshold, summary = choose_threshold(tables)
        metadata["thresholds"]["classifier"] = threshold
    else:
        summary = summarise([outcome(t, pipeline.thresholds.classifier) for t in tables])
    summary.update(
        split=args.split, seeds=[base, base + args.cases - 1], mean_seconds=float(np.mean(seconds))
    )
    if args.tune or args.record:
        metadata[args.split] = summary
        metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
