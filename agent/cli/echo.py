"""`dicom-agent echo DESTINATION`: check that a configured destination can take results."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.context import settings
from agent.destinations import check_destination, find_destination


def echo(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="A destination's name from the config.")],
) -> None:
    """C-ECHO a dimse destination, or check that a folder destination is writable.

    Exit status 0 when it is usable, 1 (with the reason) when it is not.
    """
    config = settings(ctx)
    typer.echo(check_destination(find_destination(config, destination), config.ae_title))
