"""`dicom-agent demo`: send the node a synthetic chest CT, as a scanner would."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.context import settings
from agent.demo import describe, send_to_node, write_demo_study


def demo(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Phantom seed; another seed is another study.")] = 1,
    nodules: Annotated[int, typer.Option(min=0, max=6, help="Nodules drawn in the lungs.")] = 3,
    calling_ae: Annotated[
        str, typer.Option(help="Our AE title as the sender (mind allowed_peers).")
    ] = "DEMO_SCU",
    keep: Annotated[
        Path | None, typer.Option(help="Keep the DICOM files in this folder.", file_okay=False)
    ] = None,
) -> None:
    """Send a synthetic chest CT (a phantom with nodules; not a patient) to this node.

    The node must be running (`dicom-agent serve`); its results then appear like any study's:
    `dicom-agent jobs list`. Exit status 1 when any slice was not stored.
    """
    config = settings(ctx)
    if config.tls.enabled:
        typer.echo("error: the demo sends without TLS and this node listens with TLS", err=True)
        raise typer.Exit(1)
    with tempfile.TemporaryDirectory() as scratch:
        study = write_demo_study(keep or Path(scratch), seed, nodules)
        results = send_to_node(config, study.files, calling_ae)
    stored = sum(result.ok for result in results)
    typer.echo(f"stored {stored} of {len(results)} slices at {config.ae_title}:{config.port}")
    drawn = ", ".join(describe(nodule) for nodule in study.nodules) or "none"
    typer.echo(f"nodules drawn: {drawn}")
    typer.echo(
        f"the series counts as complete after {config.series_stable_seconds:g} s of quiet;"
        " follow it with: dicom-agent jobs list"
    )
    failed = next((result for result in results if not result.ok), None)
    if failed is not None:
        typer.echo(f"error: {failed.path.name}: status {failed.status} {failed.detail}", err=True)
        raise typer.Exit(1)
