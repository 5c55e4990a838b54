"""Read-only views of database rows as pydantic models: the JSON the CLI and the API emit."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from agent.db.enums import ExportState, JobState, ResultKind, SeriesState


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class StudyRead(_Read):
    id: int
    study_instance_uid: str
    patient_id: str
    patient_name: str
    accession_number: str
    study_date: date | None
    created_at: datetime


class StudySummaryRead(_Read):
    study: StudyRead
    series_count: int
    instance_count: int


class SeriesSummaryRead(_Read):
    id: int
    series_instance_uid: str
    modality: str
    description: str
    series_number: int | None
    state: SeriesState
    skip_reason: str | None
    instance_count: int
    reopened: int
    last_received_at: datetime


class SeriesRead(SeriesSummaryRead):
    study: StudyRead


class StudyWithSeriesRead(StudySummaryRead):
    series: list[SeriesSummaryRead]


class JobEventRead(_Read):
    at: datetime
    from_state: JobState | None
    to_state: JobState
    message: str


class ExportRead(_Read):
    id: int
    destination: str
    state: ExportState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None


class ResultRead(_Read):
    id: int
    kind: ResultKind
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    path: str
    created_at: datetime
    exports: list[ExportRead]


class JobRead(_Read):
    id: int
    state: JobState
    pipeline: str
    pipeline_version: str | None
    rule: str
    priority: int
    attempts: int
    error: str | None
    worker: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    superseded_by: int | None
    series: SeriesRead


class JobDetail(JobRead):
    events: list[JobEventRead]
    results: list[ResultRead]
