"""Evaluate the reference pipeline on held-out phantoms: `python -m models.reference.evaluate`.

Prints voxel Dice, lesion-level sensitivity by size band and false positives per scan, overall and
for each kind of phantom geometry (`geometry_group`: matrix and pixels, thin or thick slices), and
writes them to a JSON file; `--matrix` takes only the split's phantoms of one matrix. `--split
validation --tune` instead picks the two classifier thresholds (the detector's candidates', the
blob candidates') together on the validation seeds (never the evaluation seeds) and stores them
in the weights' metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.pipelines.lung_nodule import WEIGHTS_DIR, LungNodulePipeline
from models.reference.dicom_series import phantom_volume
from models.reference.metrics import CaseOutcome, CaseTable, merge, outcome, summarise, tabulate
from models.reference.phantom import PIXEL_SPACINGS_MM, Geometry, generate, seed_geometry
from models.reference.samples import EVALUATION_SEED_BASE, VALIDATION_SEED_BASE

log = logging.getLogger(__name__)
MAX_FALSE_POSITIVES_PER_SCAN = 0.4
PIPELINE, DETECTOR, BLOB = "pipeline", "detector", "blob"
NEVER = 1.01  # a threshold no confidence reaches
DETECTOR_GRID = np.round(np.arange(0.05, 1.0, 0.05), 2)
BLOB_GRID = np.round(np.concatenate([np.arange(0.80, 0.99, 0.01), [0.99, 0.995, NEVER]]), 3)
THIN_SLICES_MM = 1.5  # the thickest slice of a "thin-slice" phantom


def geometry_group(geometry: Geometry) -> str:
    """The kind of phantom geometry, for sensitivity by geometry: matrix (with its pixel
    spacings) and thin (1-1.5 mm) or thick (2-3 mm) slices."""
    low, high = PIXEL_SPACINGS_MM[geometry.matrix]
    slices = "1-1.5" if geometry.slice_thickness <= THIN_SLICES_MM else "2-3"
    return f"{geometry.matrix} matrix ({low:.1f}-{high:.1f} mm pixels), {slices} mm slices"


def by_geometry(outcomes: list[CaseOutcome], groups: list[str]) -> dict[str, object]:
    """`summarise` of the cases of each geometry group (`groups`: each case's group)."""
    return {
        group: summarise([case for case, own in zip(outcomes, groups, strict=True) if own == group])
        for group in sorted(set(groups))
    }


def run_cases(
    pipeline: LungNodulePipeline, seeds: Sequence[int], source: str
) -> tuple[list[CaseTable], list[float]]:
    tables, seconds = [], []
    for seed in seeds:
        phantom = generate(seed)
        started = time.perf_counter()
        findings = pipeline.run(phantom_volume(phantom))
        seconds.append(time.perf_counter() - started)
        nodules = [(n.diameter_mm, n.kind, n.placement) for n in phantom.nodules]
        confidences = [lesion.confidence for lesion in findings.lesions]
        tables.append(tabulate(phantom.labels, findings.lesion_map, confidences, nodules, source))
        log.info(
            "seed %d: %s, %d nodules, %d %s lesions, %.1fs",
            seed,
            phantom.hu.shape,
            len(nodules),
            len(confidences),
            source,
            seconds[-1],
        )
    return tables, seconds


def tuning_tables(
    pipeline: LungNodulePipeline, seeds: Sequence[int]
) -> tuple[list[CaseTable], list[float]]:
    """Every candidate of each case with its confidence and source: one run keeping all the
    detector's candidates and no blob, one keeping every blob and no detector candidate."""
    base = pipeline.thresholds
    pipeline.thresholds = dataclasses.replace(base, classifier=0.0, blob_classifier=NEVER)
    detector, seconds = run_cases(pipeline, seeds, DETECTOR)
    pipeline.thresholds = dataclasses.replace(base, classifier=NEVER, blob_classifier=0.0)
    blobs, more = run_cases(pipeline, seeds, BLOB)
    pipeline.thresholds = base
    tables = [merge(a, b) for a, b in zip(detector, blobs, strict=True)]
    return tables, [a + b for a, b in zip(seconds, more, strict=True)]


def choose_thresholds(
    tables: list[CaseTable], max_false_positives: float = MAX_FALSE_POSITIVES_PER_SCAN
) -> tuple[dict[str, float], dict[str, object]]:
    """The detector and blob classifier thresholds that find the most nodules within
    `max_false_positives` per scan; among equals, fewer false positives, then higher
    thresholds."""
    best: tuple[tuple[int, float, float], dict[str, float]] | None = None
    for detector in DETECTOR_GRID:
        for blob in BLOB_GRID:
            chosen = {DETECTOR: float(detector), BLOB: float(blob)}
            cases = [outcome(table, chosen) for table in tables]
            false_positives = sum(case.false_positives for case in cases) / len(cases)
            if false_positives > max_false_positives:
                continue
            found = sum(nodule.detected for case in cases for nodule in case.nodules)
            key = (found, -false_positives, float(detector + blob))
            if best is None or key > best[0]:
                best = (key, chosen)
    chosen = best[1] if best is not None else {DETECTOR: 0.95, BLOB: NEVER}
    return chosen, summarise([outcome(table, chosen) for table in tables])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument(
        "--first-case",
        type=int,
        default=0,
        help="skip this many of the split's seeds (a fresh sample after looking at the first)",
    )
    parser.add_argument("--split", choices=["evaluation", "validation"], default="evaluation")
    parser.add_argument(
        "--matrix",
        type=int,
        choices=sorted(PIXEL_SPACINGS_MM),
        help="only the phantoms of this matrix among the split's --cases seeds",
    )
    parser.add_argument(
        "--tune", action="store_true", help="choose the classifier threshold (validation only)"
    )
    parser.add_argument(
        "--max-false-positives",
        type=float,
        default=MAX_FALSE_POSITIVES_PER_SCAN,
        help="the false positives per validation scan --tune may spend",
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
    split_base = VALIDATION_SEED_BASE if args.split == "validation" else EVALUATION_SEED_BASE
    base = split_base + args.first_case
    pipeline = LungNodulePipeline(args.weights)
    drawn = {seed: seed_geometry(seed) for seed in range(base, base + args.cases)}
    seeds = [s for s, geometry in drawn.items() if args.matrix in (None, geometry.matrix)]
    metadata_path = args.weights / "reference.json"
    metadata = json.loads(metadata_path.read_text())
    if args.tune:
        tables, seconds = tuning_tables(pipeline, seeds)
        chosen, _ = choose_thresholds(tables, args.max_false_positives)
        metadata["thresholds"].update(classifier=chosen[DETECTOR], blob_classifier=chosen[BLOB])
    else:  # the pipeline applies its own thresholds: every lesion it reports counts
        tables, seconds = run_cases(pipeline, seeds, PIPELINE)
        chosen = {PIPELINE: 0.0}
    outcomes = [outcome(table, chosen) for table in tables]
    summary = summarise(outcomes)
    if args.tune:
        summary.update(thresholds=chosen, max_false_positives=args.max_false_positives)
    summary.update(
        by_geometry=by_geometry(outcomes, [geometry_group(drawn[seed]) for seed in seeds]),
        split=args.split,
        seeds=[base, base + args.cases - 1],
        matrix=args.matrix,
        mean_seconds=float(np.mean(seconds)),
    )
    if args.tune or args.record:
        metadata[args.split] = summary
        metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
