"""What every command needs: the settings, a database session, and shared output helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from agent.config import Settings
from agent.config_loading import load_settings
from agent.db.session import create_db_engine, database_errors, session_factory, session_scope


@dataclass
class CliState:
    """Set by the top-level callback; commands reach it as `ctx.obj`."""

    config_path: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, os.environ)
        return self._settings


def settings(ctx: typer.Context) -> Settings:
    state: CliState = ctx.ensure_object(CliState)
    return state.settings()


@contextmanager
def database(ctx: typer.Context) -> Iterator[Session]:
    """One session on the configured database, committed when the block ends."""
    engine = create_db_engine(settings(ctx).database_url)
    try:
        with database_errors(), session_scope(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _parse_time(text: str, *, end_of_day: bool) -> datetime:
    """An ISO date or datetime, local time unless it has an offset, as aware UTC.
    A plain date as an end bound means the end of that day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text).astimezone()
        except ValueError as exc:
            raise typer.BadParameter(f"{text!r} is not an ISO date or date-time") from exc
    start = datetime(day.year, day.month, day.day).astimezone()
    return start + timedelta(days=1) if end_of_day else start


def parse_since(text: str) -> datetime:
    return _parse_time(text, end_of_day=False)


def parse_until(text: str) -> datetime:
    return _parse_time(text, end_of_day=True)


def local_time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain left-aligned text table; None prints as '-'."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells, strict=False)]
    for line in [list(headers), *cells]:
        typer.echo(
            "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        )
