"""`/metrics`: gauges from the job database and the spool, in Prometheus' text format 0.0.4.

Hand-written: a handful of gauges read at scrape time need no client library. Prometheus
sends the token with `authorization: {type: Bearer, credentials: <token>}` in its scrape config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from agent.api.deps import SessionDep, StateDep
from agent.db.queries import count_instances, count_jobs_by_state

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    samples: Sequence[tuple[Labels, int]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample_line(name: str, labels: Labels, value: int) -> str:
    if not labels:
        return f"{name} {value}"
    pairs = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
    return f"{name}{{{pairs}}} {value}"


def render(gauges: Sequence[Gauge]) -> str:
    """The exposition text: HELP and TYPE lines, then one line per sample."""
    lines: list[str] = []
    for gauge in gauges:
        lines += [f"# HELP {gauge.name} {gauge.help}", f"# TYPE {gauge.name} gauge"]
        lines += [_sample_line(gauge.name, labels, value) for labels, value in gauge.samples]
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(session: SessionDep, state: StateDep) -> PlainTextResponse:
    """Jobs by state, instances received, files in quarantine."""
    jobs = count_jobs_by_state(session)
    gauges = [
        Gauge(
            "dicom_agent_jobs",
            "Jobs in the job database, by state.",
            [({"state": job_state.value}, count) for job_state, count in jobs.items()],
        ),
        Gauge(
            "dicom_agent_instances_received",
            "Received instances indexed in the job database.",
            [({}, count_instances(session))],
        ),
        Gauge(
            "dicom_agent_quarantined_files",
            "Received files kept in the spool's quarantine.",
            [({}, len(state.spool.list_quarantine()))],
        ),
    ]
    return PlainTextResponse(render(gauges), media_type=CONTENT_TYPE)
