"""The initial job database: studies, series, instances, jobs and their events, results, exports.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

States are plain VARCHAR(16) holding the str enum values of agent.db.enums, so adding a state
needs no schema change. Times are timestamps with time zone, always UTC.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _state(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=16), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=nullable)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _parent(
    table: str, column: str, parent: str, ondelete: str = "CASCADE"
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=f"fk_{table}_{column}_{parent}", ondelete=ondelete
    )


def _indexes(table: str, *columns: str) -> None:
    for column in columns:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "studies",
        _id(),
        _text("study_instance_uid"),
        _text("patient_id"),
        _text("patient_name"),
        _text("accession_number"),
        sa.Column("study_date", sa.Date(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("study_instance_uid", name="uq_studies_study_instance_uid"),
    )
    op.create_table(
        "series",
        _id(),
        _text("series_instance_uid"),
        sa.Column("study_id", sa.Integer(), nullable=False),
        _text("modality"),
        _text("description"),
        sa.Column("series_number", sa.Integer(), nullable=True),
        _state("state"),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        _time("last_received_at"),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        _parent("series", "study_id", "studies"),
        sa.PrimaryKeyConstraint("id", name="pk_series"),
        sa.UniqueConstraint("series_instance_uid", name="uq_series_series_instance_uid"),
    )
    _indexes("series", "state", "study_id")
    op.create_table(
        "instances",
        _id(),
        _text("sop_instance_uid"),
        sa.Column("series_id", sa.Integer(), nullable=False),
        _text("sop_class_uid"),
        _text("transfer_syntax_uid"),
        _text("spool_path"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        _time("received_at"),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        _parent("instances", "series_id", "series"),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
        sa.UniqueConstraint("sop_instance_uid", name="uq_instances_sop_instance_uid"),
    )
    _indexes("instances", "series_id")
    op.create_table(
        "jobs",
        _id(),
        sa.Column("series_id", sa.Integer(), nullable=False),
        _text("pipeline"),
        _text("pipeline_version", nullable=True),
        _text("rule"),
        sa.Column("priority", sa.Integer(), nullable=False),
        _state("state"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("lease_expires_at", nullable=True),
        _text("worker", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _parent("jobs", "series_id", "series"),
        _parent("jobs", "superseded_by", "jobs", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    _indexes("jobs", "created_at", "series_id", "state")
    op.create_table(
        "job_events",
        _id(),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _time("at"),
        _state("from_state", nullable=True),
        _state("to_state"),
        sa.Column("message", sa.Text(), nullable=False),
        _parent("job_events", "job_id", "jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    _indexes("job_events", "job_id")
    op.create_table(
        "results",
        _id(),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _state("kind"),
        _text("sop_instance_uid"),
        _text("sop_class_uid"),
        _text("series_instance_uid"),
        _text("path"),
        _time("created_at"),
        _parent("results", "job_id", "jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("sop_instance_uid", name="uq_results_sop_instance_uid"),
    )
    _indexes("results", "job_id")
    op.create_table(
        "exports",
        _id(),
        sa.Column("result_id", sa.Integer(), nullable=False),
        _text("destination"),
        _state("state"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("next_attempt_at", nullable=True),
        _time("sent_at", nullable=True),
        _parent("exports", "result_id", "results"),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
        sa.UniqueConstraint("result_id", "destination", name="uq_exports_result_id_destination"),
    )
    _indexes("exports", "state")


def downgrade() -> None:
    for table in ("exports", "results", "job_events", "jobs", "instances", "series", "studies"):
        op.drop_table(table)
