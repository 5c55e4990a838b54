"""Group commit: concurrent callers share one expensive commit step instead of one each.

`GroupCommit.submit(item)` blocks until `item` went through the commit function and
returns its result (or raises its error). No thread of its own: the first caller to find no
commit running becomes the leader, takes every item queued so far (its own included), runs
the commit function on the batch outside the lock and hands out the results. Callers who
arrived meanwhile wait; when the leader is done, one of them leads the next batch (oldest
items first, at most `max_batch`). A lone caller commits its own item at once, so batching
costs nothing without concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

Item = TypeVar("Item")
Result = TypeVar("Result")

CommitFunction = Callable[[Sequence[Item]], Sequence[Result | Exception]]
"""Commits a batch; one result or error per item, in order. Raising fails the whole batch."""

_INTERRUPTED = RuntimeError("the commit was interrupted")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    done: bool = False
    outcome: Result | Exception | None = field(default=None)


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent `submit` calls into calls of `commit`, at most `max_batch` items each."""

    def __init__(self, commit: CommitFunction[Item, Result], max_batch: int = 64) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._condition = threading.Condition()
        self._queue: list[_Waiting[Item, Result]] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """How many submitted items wait for a commit to start."""
        with self._condition:
            return len(self._queue)

    def submit(self, item: Item) -> Result:
        """Commit `item` with whatever else is queued; its result, or raise its error."""
        waiting: _Waiting[Item, Result] = _Waiting(item)
        with self._condition:
            self._queue.append(waiting)
        while True:
            with self._condition:
                while self._leading and not waiting.done:
                    self._condition.wait()
                if waiting.done:
                    return self._unwrap(waiting)
                self._leading = True
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._lead(batch)  # the oldest items: maybe not yet this caller's own

    def _lead(self, batch: list[_Waiting[Item, Result]]) -> None:
        outcomes: Sequence[Result | Exception] = [_INTERRUPTED] * len(batch)
        try:
            outcomes = self._run([waiting.item for waiting in batch])
        finally:  # even when interrupted, the waiters get an outcome and a new leader
            with self._condition:
                for waiting, outcome in zip(batch, outcomes, strict=True):
                    waiting.outcome, waiting.done = outcome, True
                self._leading = False
                self._condition.notify_all()

    def _run(self, items: list[Item]) -> Sequence[Result | Exception]:
        try:
            outcomes = self._commit(items)
        except Exception as exc:  # the batch's error is each item's error
            return [exc] * len(items)
        if len(outcomes) != len(items):
            return [RuntimeError(f"{len(outcomes)} results for {len(items)} items")] * len(items)
        return outcomes

    @staticmethod
    def _unwrap(waiting: _Waiting[Item, Result]) -> Result:
        if isinstance(waiting.outcome, Exception):
            raise waiting.outcome
        return cast(Result, waiting.outcome)
