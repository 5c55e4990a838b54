"""Job messages on Redis come off the inference queue highest job priority first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Consumer, Message

from agent.config import Settings
from tests.support.databases import emptied_redis
from tests.support.fixtures import REDIS_URL
from workers.celery_app import INFERENCE_QUEUE, CeleryDispatcher, broker_priority, make_celery

pytestmark = pytest.mark.integration


def test_broker_priority_maps_job_priority_onto_redis_levels() -> None:
    assert [broker_priority(p) for p in (-3, 0, 1, 5, 9, 40)] == [9, 9, 8, 4, 0, 0]


def test_higher_priority_jobs_are_taken_first(tmp_path: Path) -> None:
    try:
        url = emptied_redis(REDIS_URL)
    except redis.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable: {exc}")
    settings = Settings.model_validate({"spool_dir": tmp_path, "broker_url": url})
    app = make_celery(settings)
    dispatcher = CeleryDispatcher(app)
    for job_id, priority in ((1, 0), (2, 5), (3, 0), (4, 9)):
        dispatcher.send_job(job_id, priority)
    taken: list[int] = []

    def on_message(body: Any, message: Message) -> None:
        args, _kwargs, _embed = body
        taken.append(args[0])
        message.ack()

    with app.connection_for_read() as connection:
        queue = app.amqp.queues[INFERENCE_QUEUE]
        with Consumer(connection, [queue], callbacks=[on_message], prefetch_count=1):
            while len(taken) < 4:
                connection.drain_events(timeout=5)

    assert taken == [4, 2, 1, 3]
