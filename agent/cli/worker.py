"""`dicom-agent worker`: runs AI jobs and exports from the broker's queues."""

from __future__ import annotations

import typer

from agent.cli.context import settings
from agent.cli.serve import LogLevel
from agent.logs import configure_logging


def worker(ctx: typer.Context, log_level: LogLevel = "INFO") -> None:
    """Run a worker: AI jobs and exports, one at a time, until SIGINT or SIGTERM."""
    # Imported here: only workers need the task code (highdicom, the pipelines).
    from workers.main import run_worker

    config = settings(ctx)
    configure_logging(config, log_level.upper())
    raise typer.Exit(run_worker(config, log_level.upper()))
