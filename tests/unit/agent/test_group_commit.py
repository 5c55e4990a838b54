"""Group commit with real threads: batching, per-item results and errors, batch limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from agent.group_commit import GroupCommit

WAIT = 5.0


class Doubler:
    """Commits numbers by doubling them; the first batch waits until `release` is set, so
    callers arriving meanwhile queue up behind it. Odd numbers above 100 fail alone."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(WAIT)
        return [ValueError(f"odd {n}") if n > 100 and n % 2 else 2 * n for n in items]


def queue_behind_first(
    commits: GroupCommit[int, int], doubler: Doubler, pool: ThreadPoolExecutor, later: list[int]
) -> tuple[Future[int], list[Future[int]]]:
    """Submit 0 (which blocks in its commit), then `later` while it blocks; then release."""
    first = pool.submit(commits.submit, 0)
    assert doubler.first_started.wait(WAIT)
    queued = [pool.submit(commits.submit, n) for n in later]
    deadline = time.monotonic() + WAIT
    while commits.waiting < len(later) and time.monotonic() < deadline:
        time.sleep(0.01)
    doubler.release.set()
    return first, queued


def test_a_lone_caller_commits_its_own_item_at_once() -> None:
    batches: list[list[str]] = []

    def commit(items: Sequence[str]) -> list[str]:
        batches.append(list(items))
        return [item.upper() for item in items]

    commits: GroupCommit[str, str] = GroupCommit(commit)

    assert commits.submit("a") == "A"
    assert commits.submit("b") == "B"
    assert batches == [["a"], ["b"]]


def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    doubler = Doubler()
    commits: GroupCommit[int, int] = GroupCommit(doubler)
    with ThreadPoolExecutor(8) as pool:
        first, queued = queue_behind_first(commits, doubler, pool, [1, 2, 3, 4])

        assert first.result(WAIT) == 0
        assert [future.result(WAIT) for future in queued] == [2, 4, 6, 8]
    assert doubler.batches[0] == [0]
    assert sorted(doubler.batches[1]) == [1, 2, 3, 4]


def test_an_item_error_reaches_only_its_caller() -> None:
    doubler = Doubler()
    commits: GroupCommit[int, int] = GroupCommit(doubler)
    with ThreadPoolExecutor(8) as pool:
        _, (good, bad) = queue_behind_first(commits, doubler, pool, [102, 103])

        assert good.result(WAIT) == 204
        with pytest.raises(ValueError, match="odd 103"):
            bad.result(WAIT)


def test_a_failed_commit_fails_every_item_of_its_batch_and_no_other() -> None:
    calls: list[list[int]] = []

    def commit(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            raise OSError("disk gone")
        return list(items)

    commits: GroupCommit[int, int] = GroupCommit(commit)

    with pytest.raises(OSError, match="disk gone"):
        commits.submit(1)
    assert commits.submit(2) == 2


def test_batches_are_at_most_max_batch_items() -> None:
    doubler = Doubler()
    commits: GroupCommit[int, int] = GroupCommit(doubler, max_batch=2)
    with ThreadPoolExecutor(8) as pool:
        _, queued = queue_behind_first(commits, doubler, pool, [1, 2, 3, 4, 5])

        assert sorted(future.result(WAIT) for future in queued) == [2, 4, 6, 8, 10]
    assert [len(batch) for batch in doubler.batches[1:]] == [2, 2, 1]
