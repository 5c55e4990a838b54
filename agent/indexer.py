"""Indexing spooled instances in the background, in batches.

A receiver acknowledges an instance once its file is durable in the spool; the index row
follows within about `INDEX_INTERVAL_SECONDS`, many instances to a database transaction, so
the database costs a receiver little per instance and adds nothing to the time a sender
waits. What a crash leaves unindexed, `agent.reindex` finds in the spool when the node
replaces the receiver or starts again (`agent.dimse.receivers`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from agent.dimse.ingest import InstanceRecorder
from agent.received import ReceivedInstance

LOGGER = logging.getLogger(__name__)

INDEX_INTERVAL_SECONDS = 0.5
RETRY_SECONDS = 2.0
MAX_BATCH = 500


class BackgroundIndexer:
    """An `InstanceRecorder` whose `record_batch` only queues; a thread hands the queue to
    `recorder` in batches, and tries again (logged) while the recorder fails."""

    def __init__(
        self,
        recorder: InstanceRecorder,
        interval: float = INDEX_INTERVAL_SECONDS,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self._recorder = recorder
        self._interval = interval
        self._retry = retry
        self._queue: list[ReceivedInstance] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        with self._condition:
            self._queue.extend(instances)
            self._condition.notify()

    def stop(self) -> bool:
        """Index what is queued (one last try), stop; True if nothing was left unindexed."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join()
        with self._condition:
            left = len(self._queue)
        if left:
            LOGGER.error("%d received instances not indexed; the next start re-indexes", left)
        return left == 0

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                self._condition.wait_for(lambda: self._stopping, self._interval)  # gather
                batch = self._queue[:MAX_BATCH]
                stopping = self._stopping
            if self._index(batch):
                with self._condition:
                    del self._queue[: len(batch)]
            elif stopping:
                return
            else:
                with self._condition:
                    self._condition.wait_for(lambda: self._stopping, self._retry)

    def _index(self, batch: list[ReceivedInstance]) -> bool:
        try:
            self._recorder.record_batch(batch)
        except Exception as exc:  # database down: keep the batch, try again
            # Driver messages quote the statement's parameters (UIDs, patient data): the type only.
            LOGGER.error(
                "indexing %d instances failed (%s); trying again in %.1f s",
                len(batch),
                type(exc).__name__,
                self._retry,
            )
            return False
        return True
