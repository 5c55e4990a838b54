"""The Celery application: configuration only, and a sender that needs no task code.

Messages only wake workers; the job and export rows are the truth. So the app has no result
backend, acknowledges a message after its task ran (`task_acks_late`), takes one message at
a time (`worker_prefetch_multiplier=1`), and a message whose worker died is not lost on
purpose (`task_reject_on_worker_lost`). Whatever a broker still loses (the embedded
SQLAlchemy transport does not redeliver an unacknowledged message; Redis does only after its
visibility timeout), `agent.reconciler` sends again from the rows. Redis keeps its default
visibility timeout of one hour, longer than any job: a message redelivered while its job
still runs would be harmless anyway (`claim_job` is atomic), but wasted. On Redis a job
message carries its rule's priority (`broker_priority`: 10 levels), so with one message
prefetched at a time a worker takes the most urgent waiting job next; Kombu's SQLAlchemy
transport has no priorities.

The agent imports this module to send messages (by task name) and must not pull in torch or
the task code; workers register the tasks with `workers.tasks.register_tasks`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from agent.config import Settings

INFERENCE_QUEUE = "inference"
EXPORT_QUEUE = "export"
RUN_JOB_TASK = "workers.tasks.run_job"
EXPORT_RESULT_TASK = "workers.tasks.export_result"
REDIS_VISIBILITY_TIMEOUT_SECONDS = 3600
BROKER_PRIORITY_LEVELS = 10

EMBEDDED_SCHEMES = ("sqla+", "sqlalchemy+", "filesystem:")
"""Broker URL prefixes of transports that need no server: `serve` then runs a local worker."""


def is_embedded_broker(broker_url: str) -> bool:
    """True for a broker kept in local files (Kombu's SQLAlchemy or filesystem transport)."""
    return broker_url.startswith(EMBEDDED_SCHEMES)


def make_celery(settings: Settings) -> Celery:
    """The Celery app for `settings`; tasks are registered separately, by workers only."""
    app = Celery("dicom_agent", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        result_backend=settings.result_backend,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
        task_queues=(Queue(INFERENCE_QUEUE), Queue(EXPORT_QUEUE)),
        task_default_queue=INFERENCE_QUEUE,
        task_routes={
            RUN_JOB_TASK: {"queue": INFERENCE_QUEUE},
            EXPORT_RESULT_TASK: {"queue": EXPORT_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings.broker_url),
    )
    return app


def _transport_options(broker_url: str) -> dict[str, Any]:
    if broker_url.startswith(("redis:", "rediss:")):
        return {
            "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS,
            "priority_steps": list(range(BROKER_PRIORITY_LEVELS)),
            "sep": ":",
            "queue_order_strategy": "priority",
        }
    return {}


def broker_priority(job_priority: int) -> int:
    """A job's priority (higher first, any integer) as a Redis message priority (0 first):
    job priority 9 and above share the first level, 0 and below the last."""
    return min(max(BROKER_PRIORITY_LEVELS - 1 - job_priority, 0), BROKER_PRIORITY_LEVELS - 1)


class CeleryDispatcher:
    """Sends task messages by name: what the agent and the workers use to wake workers."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def send_job(self, job_id: int, priority: int) -> None:
        """Wake a worker for job `job_id` (queue `inference`), ahead of lower priorities."""
        self._app.send_task(RUN_JOB_TASK, args=(job_id,), priority=broker_priority(priority))

    def send_export(self, export_id: int) -> None:
        """Wake a worker for export `export_id` (queue `export`)."""
        self._app.send_task(EXPORT_RESULT_TASK, args=(export_id,))
