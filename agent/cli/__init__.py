"""The `dicom-agent` command. Each command group lives in its own module; add one with a
single `app.add_typer(...)` line below. Command functions stay thin: they parse options,
call agent.db.queries / agent.jobs and print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from agent.cli import config, db, demo, echo, jobs, models, rules, serve, studies, worker
from agent.cli.context import CliState
from agent.errors import AgentError


class _AgentGroup(TyperGroup):
    """Turns the agent's own errors, from any subcommand, into a message and exit status 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer passes its own
        try:
            return super().invoke(ctx)
        except AgentError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc


app = typer.Typer(
    cls=_AgentGroup,
    name="dicom-agent",
    help="AI worklist agent for hospital PACS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML configuration file (default: $DICOM_AGENT_CONFIG, else built-in defaults).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config_path=config_path)


app.add_typer(config.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(jobs.app, name="jobs")
app.add_typer(studies.app, name="studies")
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.add_typer(models.app, name="models")
app.add_typer(rules.app, name="rules")
app.command("echo")(echo.echo)
app.command("demo")(demo.demo)
