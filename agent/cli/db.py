"""`dicom-agent db ...`: manage the job database schema."""

from __future__ import annotations

import typer

from agent.cli.context import settings
from agent.db import migrate

app = typer.Typer(help="Manage the job database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply all schema migrations to the configured database."""
    migrate.upgrade(settings(ctx).database_url)
    typer.echo("database schema is up to date")
