"""The Celery tasks: thin adapters that take ids and call the plain runners.

`register_tasks` binds them to an app and a `WorkerContext` built in the entry point (no
module-level configuration). `task_session` is the one place owning a task's database
session, its timing and its rollback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery import Celery, Task
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.spool import Spool
from workers import export, job_runner
from workers.celery_app import EXPORT_RESULT_TASK, RUN_JOB_TASK, CeleryDispatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    """Everything the tasks of one worker process share."""

    settings: Settings
    sessions: sessionmaker[Session]
    spool: Spool
    worker: str
    dispatcher: CeleryDispatcher


@contextmanager
def task_session(context: WorkerContext, task: str, key: int) -> Iterator[Session]:
    """A session for one task run: committed when the block ends, rolled back (and logged)
    if it raises, closed either way; the run's duration is logged."""
    started = time.perf_counter()
    session = context.sessions()
    extra = {"task": task, "key": key}
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        log.warning("%s(%d) rolled back", task, key, extra=extra)
        raise
    finally:
        session.close()
        elapsed = time.perf_counter() - started
        log.info("%s(%d) took %.2f s", task, key, elapsed, extra={**extra, "seconds": elapsed})


def register_tasks(app: Celery, context: WorkerContext) -> None:
    """Register `run_job` and `export_result` on `app`, bound to `context`."""
    runner = job_runner.RunnerContext(context.settings, context.spool, context.worker)

    @app.task(name=RUN_JOB_TASK)
    def run_job(job_id: int) -> None:
        with task_session(context, "run_job", job_id) as session:
            outcome = job_runner.run_job(session, runner, job_id)
        for export_id in outcome.export_ids:
            context.dispatcher.send_export(export_id)

    @app.task(name=EXPORT_RESULT_TASK, bind=True, max_retries=None)
    def export_result(self: Task, export_id: int) -> None:
        with task_session(context, "export_result", export_id) as session:
            attempt = export.export_once(session, context.spool, context.settings, export_id)
        if attempt.retry_in is not None:
            raise self.retry(countdown=attempt.retry_in)
