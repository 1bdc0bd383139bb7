"""When to create again after the concurrency limit (core.retry): the one place for "when to retry"."""

from __future__ import annotations

import pytest

from airflow_provider_runway.core import (
    RunwayConcurrencyLimitError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayTask,
)
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.core.retry import (
    MAX_CAPACITY_BACKOFF,
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


@pytest.mark.parametrize("attempt", [1, 2, 5, 20])
def test_capacity_delay_grows_from_the_poll_interval_and_is_capped(attempt: int) -> None:
    base = 2.0
    expected = min(MAX_CAPACITY_BACKOFF, base * 2 ** (attempt - 1))
    for _ in range(50):
        delay = capacity_delay(attempt, base)
        assert expected / 2 <= delay <= expected
    assert capacity_delay(attempt, base, remaining=0.5) <= 0.5
    assert capacity_delay(attempt, base, remaining=-3) == 0.0
    assert capacity_delay(attempt, base, retry_after=45.0) >= 45.0  # Retry-After wins over the cap
