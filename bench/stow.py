"""STOW-RS throughput: the same CT study as one STOW-RS request into Orthanc and into this node.

`.venv/bin/python -m bench.stow [--rounds 3]`

The study is `bench.ingest`'s (a 300-slice 512 x 512 CT, cached under scratch/bench/ingest/),
written once as a `multipart/related; type="application/dicom"` body to
scratch/bench/stow-body.bin. Each round `curl` (a process of its own, as `storescu` is for
DIMSE) POSTs that file to:
- Orthanc with its DICOMweb plugin (`/dicom-web/studies`), a fresh Orthanc each round: the
  reference;
- the node's API (`/dicom-web/studies`) served by uvicorn in this process, on a fresh spool and
  SQLite job database each round: every part durable in the spool and indexed before the
  answer, up to `agent.api.stow.PARTS_IN_FLIGHT` parts at once.
Both answers must be HTTP 200 (every instance stored). Prints each receiver's images/s (median
round) and their ratio, and writes them to scratch/bench/stow.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from agent.api.app import create_app
from agent.config import Settings
from agent.db.migrate import upgrade
from agent.dicomweb.client import multipart
from bench.ingest import SCRATCH, study_files
from tests.support.http import served
from tests.support.orthanc import running_orthanc

BODY = SCRATCH / "stow-body.bin"
OUTPUT = SCRATCH / "stow.json"
BOUNDARY = "bench-stow-boundary"
TOKEN = "bench-token"
CURL_TIMEOUT = 600


def post(url: str, *, token: str | None = None) -> float:
    """POST the body with curl; the seconds it took. Raises unless the answer is 200."""
    headers = [
        "-H",
        f'Content-Type: multipart/related; type="application/dicom"; boundary={BOUNDARY}',
    ]
    if token:
        headers += ["-H", f"Authorization: Bearer {token}"]
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", *headers]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--data-binary", f"@{BODY}", f"{url}/dicom-web/studies"],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT,
        check=True,
    )
    elapsed = time.perf_counter() - started
    if done.stdout != "200":
        raise RuntimeError(f"STOW-RS to {url} answered {done.stdout}: {done.stderr[-500:]}")
    return elapsed


def orthanc_round(scratch: Path) -> float:
    with running_orthanc(scratch / "orthanc") as pacs:
        return post(pacs.http_url)


def node_round(scratch: Path) -> float:
    settings = Settings.model_validate(
        {"spool_dir": str(scratch / "spool"), "api": {"tokens": [TOKEN]}}
    )
    upgrade(settings.database_url)
    with served(create_app(settings)) as url:
        return post(url, token=TOKEN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = study_files()
    if not BODY.exists():
        BODY.write_bytes(multipart([path.read_bytes() for path in files], BOUNDARY))
    seconds: dict[str, list[float]] = {"orthanc": [], "node": []}
    with tempfile.TemporaryDirectory(dir=SCRATCH) as scratch:
        for index in range(args.rounds):
            for name, run in (("orthanc", orthanc_round), ("node", node_round)):
                seconds[name].append(run(Path(scratch) / f"{name}-{index}"))
    rates = {name: len(files) / statistics.median(values) for name, values in seconds.items()}
    result = {
        "images": len(files),
        "rounds": args.rounds,
        "images_per_s": rates,
        "rounds_seconds": seconds,
        "ratio_node_to_orthanc": rates["node"] / rates["orthanc"],
    }
    OUTPUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(files)} images in one STOW-RS request, {args.rounds} rounds (median)")
    for name, rate in rates.items():
        print(f"{name}: {rate:.1f} images/s")
    print(f"ratio node/orthanc: {result['ratio_node_to_orthanc']:.2f}  (written to {OUTPUT})")


if __name__ == "__main__":
    main()
