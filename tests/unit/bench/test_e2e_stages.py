"""Splitting a study's end-to-end time into stages from timestamps and job events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.db.enums import JobState
from agent.db.schemas import JobEventRead
from bench.e2e_stages import Timeline, split_stages

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUEUED, RUNNING, SUCCEEDED = JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    seconds: float, from_state: JobState | None, to_state: JobState, message: str
) -> JobEventRead:
    return JobEventRead(at=at(seconds), from_state=from_state, to_state=to_state, message=message)


def run(start: float, claim: str, from_state: JobState) -> list[JobEventRead]:
    """A claim at `start`, then load, infer and encode taking 1, 4 and 2 s."""
    return [
        event(start, from_state, RUNNING, claim),
        event(start + 1, RUNNING, RUNNING, "stage load took 0.990 s"),
        event(start + 5, RUNNING, RUNNING, "stage infer took 3.990 s"),
        event(start + 7, RUNNING, RUNNING, "stage encode took 1.990 s"),
    ]


def timeline(events: list[JobEventRead], stored: float) -> Timeline:
    return Timeline(at(0), at(2), at(4), events, at(stored))


def test_stages_split_the_total_in_order() -> None:
    events = [
        event(4, None, QUEUED, "created by rule ct for pipeline lung"),
        *run(4.5, "claimed by worker w1", QUEUED),
        event(11.6, RUNNING, SUCCEEDED, "succeeded on worker w1"),
    ]

    stages = split_stages(timeline(events, stored=12.5))

    assert stages == pytest.approx(
        {
            "receive": 2,
            "completion wait": 2,
            "queue wait": 0.5,
            "load": 1,
            "infer": 4,
            "encode": 2,
            "export": 1,
            "total": 10.5,
        }
    )
    assert list(stages) == [
        "receive",
        "completion wait",
        "queue wait",
        "load",
        "infer",
        "encode",
        "export",
        "total",
    ]
    assert sum(stages.values()) - stages["receive"] - stages["total"] == pytest.approx(
        stages["total"]
    )


def test_a_taken_over_job_counts_from_the_claim_of_the_run_that_finished() -> None:
    lost = run(5, "claimed by worker w1", QUEUED)[:2]
    events = [
        event(4, None, QUEUED, "created by rule ct for pipeline lung"),
        *reversed(lost),  # out of order on purpose: events are sorted by time
        *run(20, "lease ran out; reclaimed by worker w2", RUNNING),
    ]

    stages = split_stages(timeline(events, stored=28))

    assert stages["queue wait"] == pytest.approx(16)
    assert stages["load"] == pytest.approx(1)
    assert stages["export"] == pytest.approx(1)


def test_a_job_never_claimed_has_no_stages() -> None:
    events = [event(4, None, QUEUED, "created by rule ct for pipeline lung")]

    with pytest.raises(ValueError, match="never claimed"):
        split_stages(timeline(events, stored=5))
