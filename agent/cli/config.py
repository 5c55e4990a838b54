"""`dicom-agent config ...`: inspect the effective configuration."""

from __future__ import annotations

import typer
import yaml

from agent.cli.context import settings
from agent.config import Settings
from models.pipelines.registry import available

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the configuration and print it, secrets masked; exit 1 if it is invalid or a
    rule names a pipeline that is not installed."""
    current = settings(ctx)
    typer.echo(yaml.safe_dump(current.printable(), sort_keys=False), nl=False)
    problems = unknown_pipelines(current)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


def unknown_pipelines(current: Settings) -> list[str]:
    """One line per rule whose pipeline neither ships nor lies in `models_dir`."""
    known = sorted(info.name for info in available(current.models_dir))
    return [
        f"rules: rule '{rule.name}' runs pipeline '{rule.pipeline}', which is not installed;"
        f" known: {', '.join(known)} (models_dir: {current.models_dir})"
        for rule in current.rules
        if rule.pipeline not in known
    ]
