"""`dicom-agent studies ...`: what has been received."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from agent.cli.context import database, echo_json, echo_table, local_time
from agent.db.queries import list_studies, series_of_studies
from agent.db.schemas import SeriesSummaryRead, StudySummaryRead, StudyWithSeriesRead

app = typer.Typer(help="Received studies.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    patient: Annotated[str | None, typer.Option(help="Only this Patient ID.")] = None,
    accession: Annotated[str | None, typer.Option(help="Only this Accession Number.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    with_series: Annotated[
        bool,
        typer.Option("--series", help="Also list each series: its state and why it was skipped."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List received studies with their series and instance counts."""
    with database(ctx) as session:
        found = list_studies(session, patient_id=patient, accession_number=accession, limit=limit)
        views = [StudySummaryRead.model_validate(summary) for summary in found]
        detailed = _with_series(session, views) if with_series else []
    if as_json:
        echo_json([view.model_dump(mode="json") for view in (detailed or views)])
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
    if with_series:
        _echo_series(detailed)


def _with_series(session: Session, views: Sequence[StudySummaryRead]) -> list[StudyWithSeriesRead]:
    series = series_of_studies(session, [view.study.id for view in views])
    return [
        StudyWithSeriesRead(
            **dict(view),
            series=[SeriesSummaryRead.model_validate(row) for row in series[view.study.id]],
        )
        for view in views
    ]


def _echo_series(studies: Sequence[StudyWithSeriesRead]) -> None:
    typer.echo("\nseries:")
    echo_table(
        ["STUDY", "NUMBER", "MODALITY", "DESCRIPTION", "STATE", "INSTANCES", "SKIP REASON"],
        [
            [
                study.study.id,
                s.series_number,
                s.modality,
                s.description,
                s.state,
                s.instance_count,
                s.skip_reason,
            ]
            for study in studies
            for s in study.series
        ],
    )
