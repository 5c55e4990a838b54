"""`dicom-agent serve`: the node (listener, completion, reconciler, API, local worker)."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.context import CliState, settings
from agent.logs import configure_logging
from agent.serve import serve as serve_node

LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def serve(ctx: typer.Context, log_level: LogLevel = "INFO") -> None:
    """Run the node: DICOM listener, completion and routing, reconciler, API, and with the
    embedded broker a local worker. Stops cleanly on SIGINT or SIGTERM."""
    config = settings(ctx)
    configure_logging(config, log_level.upper())
    state: CliState = ctx.ensure_object(CliState)
    serve_node(config, state.config_path)
