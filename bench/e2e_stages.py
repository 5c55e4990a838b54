"""Where the time of one study goes, from the node's timestamps and a job's events.

A plain function, so it is tested without servers (tests/unit/bench/test_e2e_stages.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.db.enums import JobState
from agent.db.schemas import JobEventRead
from agent.jobs import parse_stage

RECEIVE = "receive"
COMPLETION_WAIT = "completion wait"
QUEUE_WAIT = "queue wait"
EXPORT = "export"
TOTAL = "total"


@dataclass(frozen=True)
class Timeline:
    """When the series' first and last instances were received, when its job was created,
    the job's events, and when the SEG and the SR were both seen at the PACS."""

    first_received: datetime
    last_received: datetime
    job_created: datetime
    events: Sequence[JobEventRead]
    stored_at_pacs: datetime


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _last_claim(events: Sequence[JobEventRead]) -> int:
    """The index of the claim that began the run which finished the job: the last event into
    `running` that is not a stage event (a first claim, or a take-over after a lost lease)."""
    claims = [
        index
        for index, event in enumerate(events)
        if event.to_state == JobState.RUNNING and parse_stage(event.message) is None
    ]
    if not claims:
        raise ValueError("the job was never claimed by a worker")
    return claims[-1]


def split_stages(timeline: Timeline) -> dict[str, float]:
    """Seconds per stage, in order: `receive` (first to last instance), `completion wait`
    (last instance to job created), `queue wait` (to the last claim), one entry per stage
    event of that run (`load`, `infer`, `encode`: from the previous boundary to the event),
    `export` (last stage event to SEG + SR stored at the PACS), and `total` (last instance to
    stored at the PACS), which all but `receive` add up to."""
    events = sorted(timeline.events, key=lambda event: event.at)
    claim = _last_claim(events)
    stages = {
        RECEIVE: _seconds(timeline.first_received, timeline.last_received),
        COMPLETION_WAIT: _seconds(timeline.last_received, timeline.job_created),
        QUEUE_WAIT: _seconds(timeline.job_created, events[claim].at),
    }
    boundary = events[claim].at
    for event in events[claim + 1 :]:
        stage = parse_stage(event.message)
        if stage is not None:
            stages[stage[0]] = _seconds(boundary, event.at)
            boundary = event.at
    stages[EXPORT] = _seconds(boundary, timeline.stored_at_pacs)
    stages[TOTAL] = _seconds(timeline.last_received, timeline.stored_at_pacs)
    return stages
