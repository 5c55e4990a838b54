"""`dicom-agent jobs ...`: list, inspect, retry and cancel AI jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from agent import jobs
from agent.cli.context import database, echo_json, echo_table, local_time, parse_since, parse_until
from agent.db.enums import JobState
from agent.db.queries import JobFilter, get_job, list_jobs
from agent.db.schemas import JobDetail, JobRead

app = typer.Typer(help="AI jobs.", no_args_is_help=True)

JobId = Annotated[int, typer.Argument(help="The job's id (see `jobs list`).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    state: Annotated[
        list[JobState] | None, typer.Option(help="Only this state; repeatable.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(parser=parse_since, help="Created at or after (ISO, local).")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(parser=parse_until, help="Created before; a date means through that day."),
    ] = None,
    patient: Annotated[str | None, typer.Option(help="Only this Patient ID.")] = None,
    accession: Annotated[str | None, typer.Option(help="Only this Accession Number.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    where = JobFilter(
        states=tuple(state or ()),
        since=since,
        until=until,
        patient_id=patient,
        accession_number=accession,
        limit=limit,
    )
    with database(ctx) as session:
        views = [JobRead.model_validate(job) for job in list_jobs(session, where)]
    if as_json:
        echo_json([view.model_dump(mode="json") for view in views])
        return
    echo_table(
        ["ID", "STATE", "PIPELINE", "RULE", "PRI", "TRIES", "MODALITY", "ACCESSION", "CREATED"],
        [
            [
                v.id,
                v.state,
                v.pipeline,
                v.rule,
                v.priority,
                v.attempts,
                v.series.modality,
                v.series.study.accession_number,
                local_time(v.created_at),
            ]
            for v in views
        ],
    )


def _echo_detail(job: JobDetail) -> None:
    series, study = job.series, job.series.study
    typer.echo(f"job {job.id}: {job.state}  pipeline {job.pipeline} {job.pipeline_version or ''}")
    typer.echo(f"  rule {job.rule}, priority {job.priority}, attempts {job.attempts}")
    typer.echo(f"  worker {job.worker or '-'}, lease until {local_time(job.lease_expires_at)}")
    typer.echo(f"  created {local_time(job.created_at)}, updated {local_time(job.updated_at)}")
    typer.echo(f"  series {series.series_instance_uid} ({series.modality}) {series.description}")
    typer.echo(f"  study {study.study_instance_uid}, accession {study.accession_number or '-'}")
    if job.superseded_by is not None:
        typer.echo(f"  superseded by job {job.superseded_by}")
    if job.error:
        typer.echo(f"  error: {job.error}")
    typer.echo("\nevents:")
    echo_table(
        ["AT", "FROM", "TO", "MESSAGE"],
        [[local_time(e.at), e.from_state, e.to_state, e.message] for e in job.events],
    )
    typer.echo("\nresults:")
    echo_table(
        ["ID", "KIND", "SOP INSTANCE UID", "PATH"],
        [[r.id, r.kind, r.sop_instance_uid, r.path] for r in job.results],
    )
    typer.echo("\nexports:")
    echo_table(
        ["RESULT", "DESTINATION", "STATE", "TRIES", "SENT", "LAST ERROR"],
        [
            [r.id, x.destination, x.state, x.attempts, local_time(x.sent_at), x.last_error]
            for r in job.results
            for x in r.exports
        ],
    )


@app.command("show")
def show(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Show one job with its events, results and exports."""
    with database(ctx) as session:
        detail = JobDetail.model_validate(get_job(session, job_id))
    if as_json:
        echo_json(detail.model_dump(mode="json"))
    else:
        _echo_detail(detail)


@app.command("retry")
def retry(ctx: typer.Context, job_id: JobId) -> None:
    """Queue a failed or cancelled job again."""
    with database(ctx) as session:
        job = jobs.retry_job(session, job_id, "retry requested from the command line")
    typer.echo(f"job {job.id} is {job.state}")


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a queued or running job."""
    with database(ctx) as session:
        job = jobs.cancel_job(session, job_id, "cancelled from the command line")
    typer.echo(f"job {job.id} is {job.state}")
