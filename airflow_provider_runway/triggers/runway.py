"""Trigger that waits for a Runway or Aleph task to finish, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runway.core.errors import RunwayError
from airflow_provider_runway.core.pricing import RUNWAY_USAGE_XCOM_KEY, trigger_prices, usage_of
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, task_result
from airflow_provider_runway.core.wait import (
    MAX_CONSECUTIVE_READ_ERRORS,
    LearnedDurations,
    Outcome,
    WaitDecision,
    WaitPolicy,
    WaitState,
    log_decision,
)
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.links.runway import RUNWAY_RESULT_URL_XCOM_KEY
from airflow_provider_runway.triggers.task_end import task_end_event

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
    :param first_poll_delay: Seconds from the start of the wait (see ``wait_state``) before the first status
        read (a fresh task is rarely done at once).
    :param deadline_source: What sets ``end_time`` (e.g. ``execution_timeout of 60 s``), named in the
        timeout message.
    :param wait_state: The wait's state so far (:meth:`WaitState.to_dict`), when it began before
        deferring; a fresh wait starts when the trigger runs otherwise.
    :param expected_duration: Seconds from the start of the wait in which the generation should end;
        ``None`` uses the median of the generations of the same ``duration`` and ``quality`` this
        triggerer has seen. Reads cluster around that end (see :class:`WaitPolicy`).
    :param duration: The generation's duration in seconds (with ``quality``, what it is compared with).
    :param quality: The generation's quality.
    :param end_in_triggerer: On success, end the task here with a task-end event carrying the XComs a
        worker would push (``return_value``, each key with ``multiple_outputs``, the result URL), where
        the running Airflow supports it; the operator sets it only when nothing is left for a worker.
        Every other outcome, and Airflow versions without task-end events, resume on a worker.
    :param multiple_outputs: The operator's ``multiple_outputs`` (with ``end_in_triggerer``).
    :param do_xcom_push: The operator's ``do_xcom_push`` (with ``end_in_triggerer``).
    :param resume_record: The Variable keeping the Runway task id for retries (Airflow below 3.3),
        deleted before the task ends here, as ``execute_complete`` deletes it; when that fails the
        task resumes on a worker instead.
    :param http_retry: ``{"limit", "delay", "max_consecutive_errors"}``: the three above in one value, as
        :meth:`serialize` writes them.
    :param schedule: ``{"first_poll_delay", "expected_duration", "duration", "quality"}``: what places the
        reads, in one value.
    :param task_end: ``None`` (resume on a worker), or ``{"multiple_outputs", "do_xcom_push", "resume_record"}``:
        ending the task here, in one plain-JSON value.

    :meth:`serialize` writes 10 keys: the wait's own, and the three grouped values above. The flat names
    still load, so triggers serialized by earlier versions survive an upgrade.
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
        expected_duration: float | None = None,
        duration: int | str | None = None,
        quality: str | None = None,
        end_in_triggerer: bool = False,
        multiple_outputs: bool = True,
        do_xcom_push: bool = True,
        resume_record: str | None = None,
        http_retry: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | None = None,
        task_end: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Airflow
        if http_retry is not None:
            retry_limit = http_retry.get("limit", retry_limit)
            retry_delay = http_retry.get("delay", retry_delay)
            max_consecutive_errors = http_retry.get("max_consecutive_errors", max_consecutive_errors)
        if schedule is not None:
            first_poll_delay = schedule.get("first_poll_delay", first_poll_delay)
            expected_duration = schedule.get("expected_duration", expected_duration)
            duration, quality = schedule.get("duration", duration), schedule.get("quality", quality)
        if task_end is not None:
            end_in_triggerer = True
            multiple_outputs = task_end.get("multiple_outputs", multiple_outputs)
            do_xcom_push = task_end.get("do_xcom_push", do_xcom_push)
            resume_record = task_end.get("resume_record", resume_record)
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
        self.expected_duration = None if expected_duration is None else float(expected_duration)
        self.duration = duration
        self.quality = quality
        self.end_in_triggerer = bool(end_in_triggerer)
        self.multiple_outputs = bool(multiple_outputs)
        self.do_xcom_push = bool(do_xcom_push)
        self.resume_record = resume_record

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's class path and keyword arguments: 10 keys, each plain JSON."""
        return (
            "airflow_provider_runway.triggers.runway.RunwayTaskTrigger",
            {
                "task_id": self.runway_task_id,
                "family": self.family,
                "runway_conn_id": self.runway_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "deadline_source": self.deadline_source,
                "wait_state": self.wait_state,
                "http_retry": {
                    "limit": self.retry_limit,
                    "delay": self.retry_delay,
                    "max_consecutive_errors": self.max_consecutive_errors,
                },
                "schedule": {
                    "first_poll_delay": self.first_poll_delay,
                    "expected_duration": self.expected_duration,
                    "duration": self.duration,
                    "quality": self.quality,
                },
                "task_end": self.task_end,
            },
        )

    @property
    def task_end(self) -> dict[str, Any] | None:
        """What ending the task here needs, or None when the task resumes on a worker."""
        if not self.end_in_triggerer:
            return None
        return {
            "multiple_outputs": self.multiple_outputs,
            "do_xcom_push": self.do_xcom_push,
            "resume_record": self.resume_record,
        }

    def policy(self, started_at: float | None = None) -> WaitPolicy:
        """The wait rules of this trigger, for a wait that started at ``started_at`` (Unix epoch seconds)."""
        learned = LearnedDurations.of_running_loop()
        expected = learned.expected(self.family, self.duration, self.quality, self.expected_duration)
        return WaitPolicy(
            self.runway_task_id,
            poll_interval=self.poll_interval,
            deadline=self.end_time,
            deadline_source=self.deadline_source,
            retry_delay=self.retry_delay,
            max_consecutive_errors=self.max_consecutive_errors,
            expected_end=None if expected is None or started_at is None else started_at + expected,
        )

    def _hook(self) -> RunwayHook:
        # No requests keep-alive adapter: the trigger only uses the async path, and thousands of
        # waits would otherwise each hold one for the garbage collector to walk.
        return RunwayHook(
            self.runway_conn_id, retry_limit=self.retry_limit, retry_delay=self.retry_delay, tcp_keep_alive=False
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the task is terminal or the deadline passes, then yield exactly one event."""
        wait = _Wait(self)
        policy = wait.policy
        prices = None
        try:
            async with self._hook() as hook:
                decision = await wait.run(hook)
                prices = await trigger_prices(hook) if decision.outcome is Outcome.DONE else None
        except Exception as error:  # a missing connection or key, or a bug: fail the task with a message, not a hang
            if not isinstance(error, RunwayError):
                self.log.exception("Waiting for Runway task %s failed", self.runway_task_id)
            decision = policy.cannot_wait(wait.state, error)
        if decision.outcome is Outcome.DONE and decision.task is not None:
            self._learn(decision.task, wait.state.started_at, wait.pending_read_at)
            usual = decision.to_event(self.runway_task_id, self.family)
            ended = await self._task_end_event(decision.task, usual, prices) if self.end_in_triggerer else None
            if ended is not None:
                yield ended
                return
        yield TriggerEvent(decision.to_event(self.runway_task_id, self.family))

    def _learn(self, task: RunwayTask, started_at: float, pending_read_at: float | None = None) -> None:
        """Remember how long the generation took: when it ended, as closely as this wait can tell."""
        seen = time.time()
        # The end lies after the last read that found the task running and before the read that saw it ended;
        # also within the second after the record's completion time when that is plausible (its zone is
        # undocumented; Runway's has whole seconds). Without a lower bound nothing is learned: the read that
        # saw the end only bounds it from above, and it was placed by what was learned before (learning it
        # would lengthen the expectation by the aim past the end on every wait that starts after the end).
        earliest, latest = pending_read_at, seen
        completed = task.completed_at.timestamp() if task.completed_at is not None else None
        if completed is not None and started_at < completed <= seen + 1.0:
            earliest, latest = max(earliest or completed, completed), min(latest, completed + 1.0)
        if earliest is None:
            return
        ended = (earliest + latest) / 2 if earliest <= latest else latest
        LearnedDurations.of_running_loop().learn(self.family, self.duration, self.quality, ended - started_at)

    async def _task_end_event(
        self, task: RunwayTask, success_event: dict[str, Any], prices: dict[str, float | None] | None = None
    ) -> TriggerEvent | None:
        """The event that ends the task here with its result, or None to resume it on a worker."""
        result = task_result(task, requested_quality=self.quality)
        usage = usage_of(task, duration=self.duration, quality=self.quality, prices=prices)
        extra: dict[str, Any] = {RUNWAY_USAGE_XCOM_KEY: usage.to_dict()}
        if task.video_url:
            extra[RUNWAY_RESULT_URL_XCOM_KEY] = task.video_url
        event = task_end_event(
            result, multiple_outputs=self.multiple_outputs, do_xcom_push=self.do_xcom_push, extra_xcoms=extra
        )
        if event is None:
            return None
        if self.resume_record is not None:
            try:
                await _delete_variable(self.resume_record)
            except Exception:
                self.log.warning(
                    "Could not delete %s; the task resumes on a worker, which does", self.resume_record, exc_info=True
                )
                return None
        self.log.info("Runway task %s succeeded: ending the task in the triggerer", self.runway_task_id)
        # A runner that does not know task-end events (dag.test runs triggers inline on every version)
        # resumes the task with the payload: make that the usual event, so the worker path still works.
        event.payload = success_event
        return event


async def _delete_variable(key: str) -> None:
    """Delete an Airflow Variable from the triggerer (in a thread: on Airflow 2 it is a database call)."""
    from airflow.providers.common.compat.sdk import Variable
    from asgiref.sync import sync_to_async

    await sync_to_async(Variable.delete)(key)


class _Wait:
    """One wait of the trigger: the loop around :meth:`WaitPolicy.decide`."""

    def __init__(self, trigger: RunwayTaskTrigger) -> None:
        self.trigger = trigger
        saved = trigger.wait_state
        self.state = WaitState.from_dict(saved) if saved is not None else WaitState(started_at=time.time())
        self.policy = trigger.policy(self.state.started_at)
        self.last: RunwayTask | None = None
        #: When a read last found the task still running.
        self.pending_read_at: float | None = self.state.last_read_at

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
        await self.sleep(self.first_delay(time.time()))
        while True:
            try:
                read: RunwayTask | RunwayError = await hook.aget_task(trigger.runway_task_id, family)
            except RunwayError as error:
                read = error
            now = time.time()
            decision = self.policy.decide(read, self.state, now)
            if decision.log:  # most reads log nothing: the trigger's logger is not even looked up
                log_decision(trigger.log, decision)
            self.state, self.last = decision.state, decision.task or self.last
            if decision.finished:
                return decision if decision.task is not None else replace(decision, task=self.last)
            if isinstance(read, RunwayTask):
                self.pending_read_at = now
            await self.sleep(decision.delay)

    def first_delay(self, now: float) -> float:
        """Seconds before the first read: on the schedule after a read made before deferring, else at once."""
        first = self.trigger.first_poll_delay - (now - self.state.started_at)
        last_read = self.state.last_read_at
        if last_read is not None:
            first = max(first, last_read + self.policy.pending_delay(last_read) - now)
        elif self.policy.expected_end is not None:  # the first read too lands on the schedule around the end
            first = max(first, self.policy.pending_delay(now))
        return max(0.0, first)
