"""The background indexer with real threads: batching, retrying, and what stop reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from agent.indexer import BackgroundIndexer
from agent.received import ReceivedInstance
from tests.conftest import MakeReceived

WAIT = 5.0


class FlakyRecorder:
    """Fails the first `failures` batches, then keeps every batch it gets."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[ReceivedInstance]] = []
        self.recorded = threading.Event()

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database is down: PAT-1 in the statement")
        self.batches.append(list(instances))
        self.recorded.set()


def started(recorder: FlakyRecorder, **options: float) -> BackgroundIndexer:
    indexer = BackgroundIndexer(recorder, **options)
    indexer.start()
    return indexer


def test_instances_queued_together_are_indexed_in_one_batch(make_received: MakeReceived) -> None:
    recorder = FlakyRecorder()
    indexer = started(recorder, interval=0.2)
    instances = [make_received() for _ in range(5)]

    for instance in instances:
        indexer.record_batch([instance])

    assert recorder.recorded.wait(WAIT)
    assert indexer.stop() is True
    assert recorder.batches == [instances]


def test_a_failing_database_is_retried_and_its_message_not_logged(
    make_received: MakeReceived, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = FlakyRecorder(failures=2)
    indexer = started(recorder, interval=0.01, retry=0.01)
    instance = make_received()

    indexer.record_batch([instance])

    assert recorder.recorded.wait(WAIT)
    assert indexer.stop() is True
    assert recorder.batches == [[instance]]
    assert "indexing 1 instances failed (ConnectionError)" in caplog.text
    assert "PAT-1" not in caplog.text


def test_stop_reports_what_it_could_not_index(
    make_received: MakeReceived, caplog: pytest.LogCaptureFixture
) -> None:
    indexer = started(FlakyRecorder(failures=1_000), interval=0.01, retry=60)

    indexer.record_batch([make_received(), make_received()])
    wait_for_log(caplog, "failed")

    assert indexer.stop() is False
    assert "2 received instances not indexed; the next start re-indexes" in caplog.text


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.01)
