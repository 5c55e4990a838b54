"""`dicom-agent config ...`: inspect the effective configuration."""

from __future__ import annotations

import typer
import yaml

from agent.cli.context import settings

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the configuration and print it, secrets masked; exit 1 if it is invalid."""
    typer.echo(yaml.safe_dump(settings(ctx).printable(), sort_keys=False), nl=False)
