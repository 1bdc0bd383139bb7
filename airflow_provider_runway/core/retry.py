"""Retry policy of Runway API calls: which failures are retried, how long to wait, and the two retry loops."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import tenacity

from airflow_provider_runway.core.errors import (
    RunwayConcurrencyLimitError,
    RunwayError,
    RunwayRateLimitedError,
    RunwayTransportError,
    RunwayUnavailableError,
)

#: Retries after the first attempt when neither the caller nor the connection sets ``retry_limit``.
DEFAULT_RETRY_LIMIT = 5
#: Base of the exponential back-off, in seconds, when neither the caller nor the connection sets it.
DEFAULT_RETRY_DELAY = 1.0
#: Longest exponential back-off step between two retries, in seconds.
MAX_BACKOFF = 60.0
#: Longest ``Retry-After`` honoured, in seconds; a longer one is shortened to this.
MAX_RETRY_AFTER = 300.0
#: Code KIE uses for planned maintenance: nothing was created, so a create may be retried.
MAINTENANCE_CODE = 455
#: Longest pause between two creates while every generation slot of the account is busy, in seconds.
MAX_CAPACITY_BACKOFF = 30.0

T = TypeVar("T")
R = TypeVar("R")
RetryPolicy = Callable[[BaseException], bool]


class _Logger(Protocol):
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def backoff_delay(attempt: int, delay: float, retry_after: float | None = None, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Exponential (``delay * 2**(attempt-1)``, at most ``cap``) with equal jitter, so a crowd of
    clients does not retry in lock step; never shorter than the server's ``Retry-After``
    (itself capped at :data:`MAX_RETRY_AFTER`).
    """
    base = min(cap, max(0.0, delay) * 2 ** max(0, attempt - 1))
    wait = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return float(wait)


def read_may_retry(error: BaseException) -> bool:
    """A read (or any call that cannot create anything) is retried on every retryable error."""
    return isinstance(error, RunwayError) and error.retryable


def create_may_retry(error: BaseException) -> bool:
    """A create is retried only where the server cannot have created a task: 429, 455, a request never sent."""
    if isinstance(error, RunwayRateLimitedError):
        return True
    if isinstance(error, RunwayUnavailableError):
        return error.code == MAINTENANCE_CODE
    if isinstance(error, RunwayTransportError):
        return not error.request_sent
    return False


def create_outcome_unknown(error: BaseException) -> bool:
    """Whether a create that failed with ``error`` may still have created (and charged) a task.

    Every retryable failure the create policy does not retry is one where the request may have been
    acted on (a 5xx, a read timeout, a dropped connection, a body that is not the documented envelope).
    """
    if isinstance(error, RunwayConcurrencyLimitError):  # KIE answered: nothing was created
        return False
    return read_may_retry(error) and not create_may_retry(error)


def waits_for_capacity(outcome: object) -> bool:
    """Whether a create's outcome means "KIE cannot take it now": create again later, within the deadline.

    ``outcome`` is the error a create raised: a 400 "Reached the limit for concurrent generations", or a
    429 the HTTP retries could not ride out (KIE rejects, and does not queue, creates over its rate
    limit); or the task a create returned when KIE accepted it and then failed it with the concurrency
    message before charging. In every case nothing was created or paid, so creating again cannot pay twice.
    """
    if isinstance(outcome, (RunwayConcurrencyLimitError, RunwayRateLimitedError)):
        return True
    return bool(getattr(outcome, "failed_for_concurrency", False))


def capacity_delay(
    attempt: int, delay: float, remaining: float | None = None, retry_after: float | None = None
) -> float:
    """Seconds to wait before create number ``attempt + 1`` while KIE cannot take the task.

    The exponential back-off of :func:`backoff_delay` from ``delay`` (the wait's poll interval), at
    most :data:`MAX_CAPACITY_BACKOFF` and at least ``retry_after``, never past the ``remaining``
    seconds before the deadline.
    """
    wait = backoff_delay(attempt, delay, retry_after, cap=MAX_CAPACITY_BACKOFF)
    return wait if remaining is None else max(0.0, min(wait, remaining))


class BackoffWait(tenacity.wait.wait_base):
    """Tenacity wait strategy applying :func:`backoff_delay` and a rate-limit error's ``retry_after``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = error.retry_after if isinstance(error, RunwayRateLimitedError) else None
        return backoff_delay(retry_state.attempt_number, self.delay, retry_after)


def _retry_kwargs(policy: RetryPolicy, retries: int, delay: float, log: _Logger, what: str) -> dict[str, Any]:
    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("Runway API %s: %s; retry %d of %d in %.1f s", what, error, state.attempt_number, retries, wait)

    return {
        "stop": tenacity.stop_after_attempt(retries + 1),
        "wait": BackoffWait(delay),
        "retry": tenacity.retry_if_exception(policy),
        "before_sleep": log_retry,
        "reraise": True,
    }


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    retries: int,
    delay: float,
    log: _Logger,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it succeeds, ``policy`` refuses its error, or ``retries`` retries are spent.

    The first attempt runs outside tenacity (almost every call succeeds at once, and a triggerer makes
    thousands); a failure is replayed as tenacity's first attempt, so every retry rule is tenacity's.
    """
    try:
        return attempt()
    except Exception as error:
        if retries < 1 or not policy(error):
            raise
        first_failure = error
    retrying = tenacity.Retrying(sleep=sleep, **_retry_kwargs(policy, retries, delay, log, what))
    return retrying(_replaying(first_failure, attempt))


async def acall_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    retries: int,
    delay: float,
    log: _Logger,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Async :func:`call_with_retries`: the same policy and waits, sleeping without blocking the event loop."""
    try:
        return await attempt()
    except Exception as error:
        if retries < 1 or not policy(error):
            raise
        first_failure = error
    retrying = tenacity.AsyncRetrying(sleep=sleep, **_retry_kwargs(policy, retries, delay, log, what))
    replay = _replaying(first_failure, attempt)

    async def again() -> T:
        return await replay()

    return await retrying(again)


def _replaying(failure: BaseException, attempt: Callable[[], R]) -> Callable[[], R]:
    """``attempt``, whose first call raises ``failure`` (the attempt already made) instead of running."""
    pending = [failure]

    def replay() -> R:
        if pending:
            raise pending.pop()
        return attempt()

    return replay
