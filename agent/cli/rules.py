"""`dicom-agent rules test FILE...`: which routing rule would take these instances, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from agent.cli.context import settings
from agent.routing import explain

app = typer.Typer(help="Routing rules.", no_args_is_help=True)


@app.command("test")
def test(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(help="DICOM files (headers are enough).", exists=True, dir_okay=False),
    ],
) -> None:
    """Show, for each file, how every configured rule fares and which one is chosen.

    Exit status 1 if any file is not readable DICOM.
    """
    rules = settings(ctx).rules
    unreadable = 0
    for path in files:
        typer.echo(str(path))
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError) as exc:
            typer.echo(f"error: {path}: not a readable DICOM file: {exc}", err=True)
            unreadable += 1
            continue
        for line in explain(rules, dataset).lines():
            typer.echo(f"  {line}")
    if unreadable:
        raise typer.Exit(code=1)
