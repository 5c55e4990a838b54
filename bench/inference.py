"""Whole-pipeline inference benchmark on a 512x512x300 CT (0.7 mm pixels, 1 mm slices).

    python bench/inference.py [--threads 2] [--variants fp32,fp32-eager,bf16]

Writes the phantom once as DICOM files, then runs each variant in a fresh process (so peak
memory is that variant's own): load the files, preprocess, infer, post-process. Prints seconds
per stage, peak RSS, and how far each variant's label map is from the first's (Dice, lesion
count). Variants: `fp32` is what the pipeline runs on a CPU without bf16 kernels (the detector
optimised by TorchScript), `fp32-eager` the same without that optimisation, `bf16` autocast
(the pipeline's choice where the CPU has bf16 kernels; the default list leaves it out
elsewhere, where it takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SERIES_DIR = Path("scratch/bench/ct512x300")
GEOMETRY = (512, 0.7, 1.0, 300)
SEED = 4_000_001


def write_study(directory: Path) -> None:
    from models.reference.dicom_series import write_series
    from models.reference.phantom import Geometry, generate

    if len(list(directory.glob("*.dcm"))) == GEOMETRY[3]:
        return
    write_series(generate(SEED, Geometry(*GEOMETRY), nodule_count=4), directory)


def run_variant(variant: str, directory: Path, output: Path) -> None:
    """In a child process: time each stage of one run and save the label map for comparison."""
    os.environ["DICOM_AGENT_CPU_BF16"] = "1" if variant == "bf16" else "0"
    import torch

    from models.pipelines import lung_nodule
    from models.pipelines.lung_nodule import LungNodulePipeline
    from models.volume import load_files

    if variant == "fp32-eager":
        lung_nodule.optimise_for_cpu = lambda model, runtime, shape: model
    pipeline = LungNodulePipeline()
    started = time.perf_counter()
    volume = load_files(sorted(directory.glob("*.dcm")))
    loaded = time.perf_counter()
    findings = pipeline.run(volume)
    finished = time.perf_counter()
    np.save(output.with_suffix(".npy"), findings.label_map)
    result = {
        "variant": variant,
        "runtime": pipeline.runtime.name,
        "threads": torch.get_num_threads(),
        "load_s": loaded - started,
        "pipeline_s": finished - loaded,
        "total_s": finished - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lesions": len(findings.lesions),
    }
    output.write_text(json.dumps(result))


def default_variants() -> str:
    from models.pipelines.inference import cpu_runs_bf16

    return "fp32,fp32-eager,bf16" if cpu_runs_bf16() else "fp32,fp32-eager"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", help="default: fp32,fp32-eager and bf16 where it is fast")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out_dir = SERIES_DIR.parent
    if args.child:
        run_variant(args.child, SERIES_DIR, out_dir / f"{args.child}.json")
        return
    write_study(SERIES_DIR)
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = []
    for variant in (args.variants or default_variants()).split(","):
        subprocess.run([sys.executable, __file__, "--child", variant], check=True, env=environment)
        results.append(json.loads((out_dir / f"{variant}.json").read_text()))
    reference = np.load(out_dir / f"{results[0]['variant']}.npy") > 0
    for result in results:
        result["dice_vs_first"] = dice(reference, np.load(out_dir / f"{result['variant']}.npy") > 0)
        print(
            f"{result['variant']:>6} {result['runtime']:>10}: load {result['load_s']:.2f}s "
            f"pipeline {result['pipeline_s']:.2f}s total {result['total_s']:.2f}s "
            f"peak {result['peak_rss_mib']:.0f} MiB, {result['lesions']} lesions, "
            f"Dice vs {results[0]['variant']} {result['dice_vs_first']:.3f}"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
