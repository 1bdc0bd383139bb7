"""Trigger that waits for a Runway or Aleph task to finish, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runway.core.errors import RunwayError
from airflow_provider_runway.core.results import RunwayTask, TaskFamily
from airflow_provider_runway.core.wait import (
    MAX_CONSECUTIVE_READ_ERRORS,
    WaitDecision,
    WaitPolicy,
    WaitState,
    log_decision,
)
from airflow_provider_runway.hooks.runway import RunwayHook

#: Time a status read may take past the deadline (the last read happens at the deadline).
DEADLINE_READ_GRACE = 10.0


class RunwayTaskTrigger(BaseTrigger):
    """
    Poll a Runway or Aleph task until it finishes, fails or the deadline passes; yield one event.

    One aiohttp session serves the whole wait (shared with the other Runway waits of the triggerer,
    see :class:`~airflow_provider_runway.hooks.runway.RunwayHook`) and the connection is read through
    Airflow's async API, so nothing blocks the triggerer's event loop. The trigger only reads, so two
    triggerers running it at once (e.g. during a triggerer failover) are harmless.

    Each status read is judged by :class:`~airflow_provider_runway.core.wait.WaitPolicy`, the rules
    the synchronous wait and the sensor follow too: the first read after ``first_poll_delay``, then
    one every ``poll_interval`` (a last one at the deadline); failed reads back off until
    ``max_consecutive_errors`` in a row; a 404 is "not visible yet" for 30 seconds until the task was
    seen. Progress is logged at INFO at most every 30 seconds.

    The single event is plain JSON: ``{"status", "task_id", "family", "task", "message", "retryable"}``
    where ``status`` is ``success``, ``failed`` (remote failure, or a result whose files expired),
    ``timeout`` (``end_time`` passed) or ``error`` (an API error such as 401 or 402, or too many
    consecutive failed reads: then ``retryable`` is true), and ``task`` is :meth:`RunwayTask.to_dict`
    or ``None``.

    :param task_id: The Runway task id to wait for.
    :param family: ``runway`` (generate and extend) or ``aleph``.
    :param runway_conn_id: The Runway connection.
    :param poll_interval: Seconds between two status reads.
    :param end_time: Absolute deadline, Unix epoch seconds; ``None`` waits without limit. Absolute, so
        a triggerer restart does not restart the clock.
    :param retry_limit: Retries of one status read inside the hook; ``None`` uses the connection's setting.
    :param retry_delay: Base of the exponential back-off, in seconds; ``None`` uses the connection's setting.
    :param max_consecutive_errors: Failed polls in a row that end the wait with an ``error`` event.
    :param first_poll_delay: Seconds before the first status read (a fresh task is rarely done at once).
    :param deadline_source: What sets ``end_time`` (e.g. ``execution_timeout of 60 s``), named in the
        timeout message.
    :param wait_state: The wait's state so far (:meth:`WaitState.to_dict`), when it began before
        deferring; a fresh wait starts when the trigger runs otherwise.
    """

    def __init__(
        self,
        task_id: str,
        family: str = "runway",
        runway_conn_id: str = "runway_default",
        poll_interval: float = 5.0,
        end_time: float | None = None,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
        max_consecutive_errors: int = MAX_CONSECUTIVE_READ_ERRORS,
        first_poll_delay: float = 0.0,
        deadline_source: str | None = None,
        wait_state: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Airflow
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
        self.retry_limit = None if retry_limit is None else int(retry_limit)
        self.retry_delay = None if retry_delay is None else float(retry_delay)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.first_poll_delay = max(0.0, float(first_poll_delay))
        self.deadline_source = deadline_source
        self.wait_state = None if wait_state is None else WaitState.from_dict(wait_state).to_dict()

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
                "deadline_source": self.deadline_source,
                "wait_state": self.wait_state,
            },
        )

    def policy(self) -> WaitPolicy:
        """The wait rules of this trigger."""
        return WaitPolicy(
            self.runway_task_id,
            poll_interval=self.poll_interval,
            deadline=self.end_time,
            deadline_source=self.deadline_source,
            retry_delay=self.retry_delay,
            max_consecutive_errors=self.max_consecutive_errors,
        )

    def _hook(self) -> RunwayHook:
        # No requests keep-alive adapter: the trigger only uses the async path, and thousands of
        # waits would otherwise each hold one for the garbage collector to walk.
        return RunwayHook(
            self.runway_conn_id, retry_limit=self.retry_limit, retry_delay=self.retry_delay, tcp_keep_alive=False
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the task is terminal or the deadline passes, then yield exactly one event."""
        policy = self.policy()
        wait = _Wait(self, policy)
        try:
            async with self._hook() as hook:
                decision = await wait.run(hook)
        except Exception as error:  # a missing connection or key, or a bug: fail the task with a message, not a hang
            if not isinstance(error, RunwayError):
                self.log.exception("Waiting for Runway task %s failed", self.runway_task_id)
            decision = policy.cannot_wait(wait.state, error)
        yield TriggerEvent(decision.to_event(self.runway_task_id, self.family))


class _Wait:
    """One wait of the trigger: the loop around :meth:`WaitPolicy.decide`."""

    def __init__(self, trigger: RunwayTaskTrigger, policy: WaitPolicy) -> None:
        self.trigger = trigger
        self.policy = policy
        saved = trigger.wait_state
        self.state = WaitState.from_dict(saved) if saved is not None else WaitState(started_at=time.time())
        self.last: RunwayTask | None = None

    def remaining(self) -> float:
        end_time = self.trigger.end_time
        return float("inf") if end_time is None else end_time - time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but never past the deadline (the last poll happens at the deadline)."""
        await asyncio.sleep(max(0.0, min(seconds, self.remaining())))

    async def run(self, hook: RunwayHook) -> WaitDecision:
        """Poll until a final decision; a read still retrying (Retry-After can be long) ends at deadline plus grace.

        One timer guards the whole wait rather than one per read: sleeps never pass the deadline,
        so it can only fire during a read, and thousands of waits keep the loop's timer heap small.
        """
        remaining = self.remaining()
        if remaining == float("inf"):
            return await self.loop(hook)
        limit = max(remaining, 0.0) + DEADLINE_READ_GRACE
        try:
            timeout = getattr(asyncio, "timeout", None)
            if timeout is None:  # Python 3.10
                return await asyncio.wait_for(self.loop(hook), timeout=limit)
            async with timeout(limit):
                return await self.loop(hook)
        except asyncio.TimeoutError:  # the hook was still retrying when the deadline passed
            return self.policy.timed_out(self.state, time.time(), self.last)

    async def loop(self, hook: RunwayHook) -> WaitDecision:
        trigger = self.trigger
        family = TaskFamily(trigger.family)
        await self.sleep(trigger.first_poll_delay)
        while True:
            try:
                read: RunwayTask | RunwayError = await hook.aget_task(trigger.runway_task_id, family)
            except RunwayError as error:
                read = error
            decision = self.policy.decide(read, self.state, time.time())
            log_decision(trigger.log, decision)
            self.state, self.last = decision.state, decision.task or self.last
            if decision.finished:
                return decision if decision.task is not None else replace(decision, task=self.last)
            await self.sleep(decision.delay)
