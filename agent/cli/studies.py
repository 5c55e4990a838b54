"""`dicom-agent studies ...`: what has been received."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.context import database, echo_json, echo_table, local_time
from agent.db.queries import list_studies
from agent.db.schemas import StudySummaryRead

app = typer.Typer(help="Received studies.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    patient: Annotated[str | None, typer.Option(help="Only this Patient ID.")] = None,
    accession: Annotated[str | None, typer.Option(help="Only this Accession Number.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List received studies with their series and instance counts."""
    with database(ctx) as session:
        found = list_studies(session, patient_id=patient, accession_number=accession, limit=limit)
        views = [StudySummaryRead.model_validate(summary) for summary in found]
    if as_json:
        echo_json([view.model_dump(mode="json") for view in views])
        return
    echo_table(
        ["ID", "STUDY DATE", "PATIENT ID", "ACCESSION", "SERIES", "INSTANCES", "RECEIVED"],
        [
            [
                v.study.id,
                v.study.study_date,
                v.study.patient_id,
                v.study.accession_number,
                v.series_count,
                v.instance_count,
                local_time(v.study.created_at),
            ]
            for v in views
        ],
    )
