"""When to create again after the concurrency limit (core.retry): the one place for "when to retry"."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from airflow_provider_runway.core import (
    RunwayConcurrencyLimitError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayTask,
)
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.core.retry import (
    capacity_delay,
    create_may_retry,
    create_outcome_unknown,
    waits_for_capacity,
)

CONCURRENCY = "Reached the limit for concurrent generations"


def test_a_concurrency_refusal_is_not_an_uncertain_create() -> None:
    """KIE answered the create: nothing exists, so the hook must not report "a task may have been created"."""
    error = RunwayConcurrencyLimitError(CONCURRENCY, code=400)
    assert not create_outcome_unknown(error)
    assert not create_may_retry(error)  # the hook does not retry it at once: the operator waits for a slot
    assert waits_for_capacity(error)


def test_what_waits_for_a_slot() -> None:
    failed = RunwayTask(task_id="t", family=TaskFamily.RUNWAY, status=TaskStatus.FAILED, fail_message=CONCURRENCY)
    other = RunwayTask(task_id="t", family=TaskFamily.RUNWAY, status=TaskStatus.FAILED, fail_message="Inappropriate")
    running = RunwayTask(task_id="t", family=TaskFamily.RUNWAY, status=TaskStatus.RUNNING)
    assert waits_for_capacity(failed)
    assert not waits_for_capacity(other)
    assert not waits_for_capacity(running)
    assert not waits_for_capacity(RunwayRequestRejectedError("Invalid prompt", code=400))
    assert not waits_for_capacity(None)
    assert waits_for_capacity(RunwayRateLimitedError("Too many requests", code=429))


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [
        # Creates 2 to 7 after refusals, from a poll interval of 2 s: doubling, capped at half a minute...
        (lambda low, high: high, [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        # ...and jitter takes off at most half.
        (lambda low, high: low, [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]),
    ],
    ids=["no-jitter", "most-jitter"],
)
def test_capacity_delay_doubles_from_the_poll_interval_up_to_half_a_minute(
    monkeypatch: pytest.MonkeyPatch, jitter: Callable[[float, float], float], expected: list[float]
) -> None:
    monkeypatch.setattr(random, "uniform", jitter)
    assert [capacity_delay(attempt, 2.0) for attempt in (1, 2, 3, 4, 5, 20)] == expected


def test_capacity_delay_ends_at_the_deadline_and_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert capacity_delay(1, 2.0, remaining=100.0) == 2.0
    assert capacity_delay(5, 2.0, remaining=0.5) == 0.5
    assert capacity_delay(5, 2.0, remaining=-3) == 0.0
    assert capacity_delay(20, 2.0, retry_after=45.0) == 45.0  # Retry-After wins over the cap...
    assert capacity_delay(20, 2.0, retry_after=45.0, remaining=10.0) == 10.0  # ...not over the deadline


def test_capacity_delay_spreads_a_crowd_of_refused_tasks() -> None:
    delays = [capacity_delay(4, 2.0) for _ in range(200)]
    assert all(8.0 <= delay <= 16.0 for delay in delays)
    assert min(delays) < 9.0 and max(delays) > 15.0  # not lock step: each bound missed with p < 1e-11
