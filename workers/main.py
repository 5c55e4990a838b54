"""The worker process: build its context from the settings and run a Celery worker.

One task at a time (`solo` pool): the task runs in the worker's own process, so a worker
killed mid-job leaves nothing behind but the job's lease, which runs out; the reconciler
then sends the job again and another worker takes it over. Models are loaded on the first
job (the registry caches them for the process), not at start.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import signals

from agent.config import Settings
from agent.db.session import create_db_engine, session_factory
from agent.spool import Spool
from workers.celery_app import EXPORT_QUEUE, INFERENCE_QUEUE, CeleryDispatcher, make_celery
from workers.tasks import WorkerContext, register_tasks

log = logging.getLogger(__name__)


def worker_name() -> str:
    """This process's name in Celery and on the jobs it claims: `dicom-agent-<pid>@<host>`."""
    return f"dicom-agent-{os.getpid()}@{socket.gethostname()}"


def _keep_entry_point_logging(**_: Any) -> None:
    """Celery lets a `setup_logging` receiver replace its own logging set-up: the entry point
    has configured logging already, so there is nothing left to do."""


def run_worker(settings: Settings, loglevel: str = "INFO") -> int:
    """Consume the inference and export queues until a shutdown signal; the exit code.

    Logging must be configured by the caller (the `worker` command).
    """
    name = worker_name()
    signals.setup_logging.connect(_keep_entry_point_logging, weak=False)
    engine = create_db_engine(settings.database_url)
    app = make_celery(settings)
    context = WorkerContext(
        settings=settings,
        sessions=session_factory(engine),
        spool=Spool(settings.spool_dir),
        worker=name,
        dispatcher=CeleryDispatcher(app),
    )
    register_tasks(app, context)
    worker = app.Worker(
        hostname=name,
        pool_cls="solo",
        concurrency=1,
        queues=[INFERENCE_QUEUE, EXPORT_QUEUE],
        loglevel=loglevel,
        without_gossip=True,
        without_mingle=True,
        quiet=True,
    )
    try:
        worker.start()
    finally:
        engine.dispose()
    return int(worker.exitcode or 0)
