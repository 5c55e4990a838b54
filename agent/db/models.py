"""The job database schema as typed SQLAlchemy 2 ORM classes.

Every schema change here needs a migration in `migrations/versions/`; a test checks that the
migrated schema and these models agree. All times are aware UTC datetimes.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from agent.db.enums import ExportState, JobState, ResultKind, SeriesState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ENUM_LENGTH = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the job database takes aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum]) -> Enum:
    """A str enum stored by value in a plain VARCHAR, so new members need no type change."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=ENUM_LENGTH,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String, unique=True)
    patient_id: Mapped[str] = mapped_column(String)
    patient_name: Mapped[str] = mapped_column(String)
    accession_number: Mapped[str] = mapped_column(String)
    study_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[list[Series]] = relationship(back_populates="study", order_by="Series.id")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String, unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    modality: Mapped[str] = mapped_column(String)
    description: Mapped[str] = mapped_column(String)
    series_number: Mapped[int | None]
    state: Mapped[SeriesState] = mapped_column(_enum(SeriesState), index=True)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    last_received_at: Mapped[datetime]
    instance_count: Mapped[int]
    reopened: Mapped[int]

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")
    jobs: Mapped[list[Job]] = relationship(back_populates="series", order_by="Job.id")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String, unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String)
    transfer_syntax_uid: Mapped[str] = mapped_column(String)
    spool_path: Mapped[str] = mapped_column(String)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None]
    received_at: Mapped[datetime]
    calling_ae: Mapped[str] = mapped_column(String(16))

    series: Mapped[Series] = relationship(back_populates="instances")


class Job(Base):
    """One pipeline run over one series. `version` guards against lost updates: a flush of a
    stale copy fails instead of overwriting a newer state."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    pipeline: Mapped[str] = mapped_column(String)
    pipeline_version: Mapped[str | None] = mapped_column(String)
    rule: Mapped[str] = mapped_column(String)
    priority: Mapped[int]
    state: Mapped[JobState] = mapped_column(_enum(JobState), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int]
    lease_expires_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column()

    series: Mapped[Series] = relationship(back_populates="jobs")
    events: Mapped[list[JobEvent]] = relationship(back_populates="job", order_by="JobEvent.id")
    results: Mapped[list[Result]] = relationship(back_populates="job", order_by="Result.id")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_state: Mapped[JobState | None] = mapped_column(_enum(JobState))
    to_state: Mapped[JobState] = mapped_column(_enum(JobState))
    message: Mapped[str] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="events")


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ResultKind] = mapped_column(_enum(ResultKind))
    sop_instance_uid: Mapped[str] = mapped_column(String, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String)
    series_instance_uid: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="results")
    exports: Mapped[list[Export]] = relationship(back_populates="result", order_by="Export.id")


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("result_id", "destination"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String)
    state: Mapped[ExportState] = mapped_column(_enum(ExportState), index=True)
    attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]

    result: Mapped[Result] = relationship(back_populates="exports")
