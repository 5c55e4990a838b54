"""`dicom-agent models ...`: the AI pipelines this installation can run."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.context import echo_json, echo_table, settings
from models.pipelines.registry import available

app = typer.Typer(help="AI pipelines.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="The folder of your own models (TorchScript .pt + .json, MONAI bundles);"
            " default: the configured models_dir."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List pipelines with their version and kind (read from metadata; loads no weights)."""
    infos = available(models_dir or settings(ctx).models_dir)
    if as_json:
        echo_json([asdict(info) for info in infos])
        return
    echo_table(
        ["NAME", "VERSION", "KIND", "SOURCE"],
        [[info.name, info.version, info.kind, info.source] for info in infos],
    )
