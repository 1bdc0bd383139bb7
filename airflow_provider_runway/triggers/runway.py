"""Trigger that waits for a Runway or Aleph task to finish, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runway.core.errors import (
    RunwayError,
    RunwayGenerationError,
    RunwayNotFoundError,
    RunwayRateLimitedError,
)
from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.hooks.runway import RunwayHook, backoff_delay

#: How long a 404 right after creation is treated as "not visible yet" rather than an error.
NOT_FOUND_GRACE_SECONDS = 30.0
#: Least time between two INFO progress lines of one wait.
PROGRESS_LOG_INTERVAL = 30.0
#: Time a status read may take past the deadline (the last read happens at the deadline).
DEADLINE_READ_GRACE = 10.0
#: Longest pause between two polls after consecutive transient errors.
MAX_ERROR_BACKOFF = 60.0


class RunwayTaskTrigger(BaseTrigger):
    """
    Poll a Runway or Aleph task until it finishes, fails or the deadline passes; yield one event.

    One aiohttp session serves the whole wait (shared with the other Runway waits of the triggerer,
    see :class:`~airflow_provider_runway.hooks.runway.RunwayHook`) and the connection is read through
    Airflow's async API, so nothing blocks the triggerer's event loop. The trigger only reads, so two
    triggerers running it at once (e.g. during a triggerer failover) are harmless.

    Polling: the first read after ``first_poll_delay``, then one every ``poll_interval`` whatever the
    state, so a finished task is noticed within one interval; a last read happens at the deadline.
    Progress (state and elapsed seconds) is logged at INFO at most every 30 seconds.

    Transient errors (429 honouring ``Retry-After``, 455, 5xx, timeouts, dropped connections,
    malformed bodies) are retried inside the hook (``retry_limit``) and then, with back-off, by the
    trigger itself until ``max_consecutive_errors`` polls in a row have failed. A 404 within
    30 seconds of the trigger starting, before the task was ever seen, counts as "not visible yet"
    (KIE may need a moment after creation); after that it ends the wait with an ``error`` event.

    The single event is plain JSON: ``{"status", "task_id", "family", "task", "message"}`` where
    ``status`` is ``success``, ``failed`` (remote failure, or a result whose files expired),
    ``timeout`` (``end_time`` passed) or ``error`` (non-retryable API error such as 401 or 402, or
    too many consecutive transient errors), and ``task`` is :meth:`RunwayTask.to_dict` or ``None``.

    :param task_id: The Runway task id to wait for.
    :param family: ``runway`` (generate and extend) or ``aleph``.
    :param runway_conn_id: The Runway connection.
    :param poll_interval: Seconds between two status reads.
    :param end_time: Absolute deadline, Unix epoch seconds; ``None`` waits without limit. Absolute, so
        a triggerer restart does not restart the clock.
    :param retry_limit: Retries of one status read inside the hook.
    :param retry_delay: Base of the exponential back-off, in seconds.
    :param max_consecutive_errors: Failed polls in a row that end the wait with an ``error`` event.
    :param first_poll_delay: Seconds before the first status read (a fresh task is rarely done at once).
    """

    def __init__(
        self,
        task_id: str,
        family: str = "runway",
        runway_conn_id: str = "runway_default",
        poll_interval: float = 5.0,
        end_time: float | None = None,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        max_consecutive_errors: int = 10,
        first_poll_delay: float = 0.0,
    ) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        if max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be at least 1, got {max_consecutive_errors}")
        # Not ``self.task_id``: BaseTrigger overwrites that with the Airflow task id once the
        # triggerer attaches the task instance.
        self.runway_task_id = task_id
        self.family = TaskFamily.coerce(family).value
        self.runway_conn_id = runway_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.retry_limit = int(retry_limit)
        self.retry_delay = float(retry_delay)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.first_poll_delay = max(0.0, float(first_poll_delay))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's class path and keyword arguments."""
        return (
            "airflow_provider_runway.triggers.runway.RunwayTaskTrigger",
            {
                "task_id": self.runway_task_id,
                "family": self.family,
                "runway_conn_id": self.runway_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "retry_limit": self.retry_limit,
                "retry_delay": self.retry_delay,
                "max_consecutive_errors": self.max_consecutive_errors,
                "first_poll_delay": self.first_poll_delay,
            },
        )

    def _hook(self) -> RunwayHook:
        # No requests keep-alive adapter: the trigger only uses the async path, and thousands of
        # waits would otherwise each hold one for the garbage collector to walk.
        return RunwayHook(
            self.runway_conn_id, retry_limit=self.retry_limit, retry_delay=self.retry_delay, tcp_keep_alive=False
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the task is terminal or the deadline passes, then yield exactly one event."""
        try:
            async with self._hook() as hook:
                event = await _Wait(self, hook).run()
        except RunwayError as error:  # e.g. a connection without a key
            event = self._event("error", None, f"Cannot wait for Runway task {self.runway_task_id}: {error}")
        except Exception as error:  # a missing connection or a bug: fail the task with a message, not a hang
            self.log.exception("Waiting for Runway task %s failed", self.runway_task_id)
            event = self._event(
                "error", None, f"Cannot wait for Runway task {self.runway_task_id}: {type(error).__name__}: {error}"
            )
        yield TriggerEvent(event)

    def _event(self, status: str, task: RunwayTask | None, message: str) -> dict[str, Any]:
        return {
            "status": status,
            "task_id": self.runway_task_id,
            "family": self.family,
            "task": task.to_dict() if task is not None else None,
            "message": message,
        }


class _Wait:
    """The state of one wait: clock, error streak and the last task seen."""

    def __init__(self, trigger: RunwayTaskTrigger, hook: RunwayHook) -> None:
        self.trigger = trigger
        self.hook = hook
        self.log = trigger.log
        self.started = time.monotonic()
        self.errors = 0
        self.last: RunwayTask | None = None
        self.family = TaskFamily(trigger.family)
        self.last_log = 0.0  # first progress line after PROGRESS_LOG_INTERVAL: short waits stay quiet

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        end_time = self.trigger.end_time
        return float("inf") if end_time is None else end_time - time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but never past the deadline (the last poll happens at the deadline)."""
        await asyncio.sleep(max(0.0, min(seconds, self.remaining())))

    async def run(self) -> dict[str, Any]:
        """Poll until an event; a read still retrying (Retry-After can be long) ends at the deadline plus a grace.

        One timer guards the whole wait rather than one per read: sleeps never pass the deadline,
        so it can only fire during a read, and thousands of waits keep the loop's timer heap small.
        """
        remaining = self.remaining()
        if remaining == float("inf"):
            return await self.loop()
        limit = max(remaining, 0.0) + DEADLINE_READ_GRACE
        try:
            timeout = getattr(asyncio, "timeout", None)
            if timeout is None:  # Python 3.10
                return await asyncio.wait_for(self.loop(), timeout=limit)
            async with timeout(limit):
                return await self.loop()
        except asyncio.TimeoutError:
            return self.timeout()  # the hook was still retrying when the deadline passed

    async def loop(self) -> dict[str, Any]:
        await self.sleep(self.trigger.first_poll_delay)
        while True:
            event, pause = await self.poll()
            if event is not None:
                return event
            if self.remaining() <= 0:
                return self.timeout()
            await self.sleep(pause)

    async def read(self) -> RunwayTask:
        return await self.hook.aget_task(self.trigger.runway_task_id, self.family)

    async def poll(self) -> tuple[dict[str, Any] | None, float]:
        """One status read: a final event, or ``None`` and the pause before the next read."""
        trigger = self.trigger
        try:
            task = await self.read()
        except RunwayNotFoundError as error:
            if self.last is None and self.elapsed() < NOT_FOUND_GRACE_SECONDS:
                self.log.info("Runway task %s is not visible yet (404); polling again", trigger.runway_task_id)
                return None, trigger.poll_interval
            return trigger._event("error", self.last, f"Runway task {trigger.runway_task_id} was not found: {error}"), 0
        except RunwayGenerationError as error:
            return trigger._event("failed", self.last, f"Runway task {trigger.runway_task_id} failed: {error}"), 0
        except RunwayError as error:
            return self.transient(error)
        self.errors = 0
        self.last = task
        return self.judge(task), trigger.poll_interval

    def transient(self, error: RunwayError) -> tuple[dict[str, Any] | None, float]:
        trigger = self.trigger
        if not error.retryable:
            return trigger._event(
                "error", self.last, f"Reading Runway task {trigger.runway_task_id} failed: {error}"
            ), 0
        self.errors += 1
        if self.errors >= trigger.max_consecutive_errors:
            message = (
                f"Gave up on Runway task {trigger.runway_task_id} after {self.errors} consecutive failed status reads; "
                f"last error: {error}"
            )
            return trigger._event("error", self.last, message), 0
        retry_after = error.retry_after if isinstance(error, RunwayRateLimitedError) else None
        pause = max(
            trigger.poll_interval,
            backoff_delay(self.errors, trigger.retry_delay, retry_after, cap=MAX_ERROR_BACKOFF),
        )
        self.log.warning(
            "Reading Runway task %s failed (%d of %d in a row): %s; polling again in %.1f s",
            trigger.runway_task_id,
            self.errors,
            trigger.max_consecutive_errors,
            error,
            pause,
        )
        return None, pause

    def judge(self, task: RunwayTask) -> dict[str, Any] | None:
        trigger = self.trigger
        if task.status is TaskStatus.SUCCEEDED:
            if task.expired:
                message = (
                    f"Runway task {trigger.runway_task_id} succeeded but its result has expired "
                    "(KIE deletes files after 14 days); the video can no longer be fetched"
                )
                return trigger._event("failed", task, message)
            succeeded = f"Runway task {trigger.runway_task_id} succeeded: {redact_url(task.video_url or '')}"
            return trigger._event("success", task, succeeded)
        if task.status is TaskStatus.FAILED:
            message = (
                f"Runway task {trigger.runway_task_id} failed (fail code {task.fail_code or 'none'}): "
                f"{task.fail_message or 'no reason given'}"
            )
            return trigger._event("failed", task, message)
        self.progress(task)
        return None

    def progress(self, task: RunwayTask) -> None:
        if self.elapsed() - self.last_log < PROGRESS_LOG_INTERVAL:
            return
        self.last_log = self.elapsed()
        self.log.info(
            "Runway task %s is %s (%s) after %.0f s",
            self.trigger.runway_task_id,
            task.status.value,
            task.raw_state or "no state",
            self.elapsed(),
        )

    def timeout(self) -> dict[str, Any]:
        trigger = self.trigger
        deadline = datetime.fromtimestamp(trigger.end_time or time.time(), tz=timezone.utc).isoformat()
        state = self.last.status.value if self.last is not None else "unknown"
        message = (
            f"Runway task {trigger.runway_task_id} did not finish before the deadline {deadline}: "
            f"waited {self.elapsed():.0f} s in this trigger, last state {state}. "
            "The remote task continues; KIE has no cancel endpoint."
        )
        return trigger._event("timeout", self.last, message)
