"""The wait policy: what one status read of a Runway task means for the wait (done, failed, timed out, poll again).

Every way of waiting (an operator's synchronous wait, the trigger, the sensor in each mode) asks
:meth:`WaitPolicy.decide` after each status read, so a task id ends the same way whatever the mode.
Nothing here imports Airflow; time is passed in, so the rules are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar, Protocol

from airflow_provider_runway.core.errors import (
    RunwayError,
    RunwayGenerationError,
    RunwayNotFoundError,
    RunwayRateLimitedError,
    RunwayTaskFailedError,
)
from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.core.results import RunwayTask, TaskStatus
from airflow_provider_runway.core.retry import DEFAULT_RETRY_DELAY, backoff_delay

#: How long a 404 before the task was ever seen counts as "not visible yet" (KIE may need a moment
#: after creating a task), measured from the start of the wait.
NOT_FOUND_GRACE_SECONDS = 30.0
#: Status reads that may fail in a row (each after the hook's own retries) before the wait gives up.
MAX_CONSECUTIVE_READ_ERRORS = 5
#: Longest pause between two reads after consecutive failed reads.
MAX_ERROR_BACKOFF = 60.0
#: Least time between two progress lines of one wait; a short wait logs none.
PROGRESS_LOG_INTERVAL = 30.0
#: Seconds between two reads around the expected end of a generation.
FAST_POLL_INTERVAL = 1.0
#: How long after the expected end the read meant to see it lands: learned ends of alike generations are known to
#: a few tenths of a second (a read that comes too early is followed by another a second later).
AIM_PAST_END = 0.25
#: Most frequent reads per wait, that first one included; a generation that outlasts them is read every
#: ``poll_interval`` again.
FAST_WINDOW_READS = 6
#: Generation times remembered per (family, duration, quality) by :class:`LearnedDurations`.
LEARNED_SAMPLES = 25


class LearnedDurations:
    """Generation times one triggerer has seen, per (family, duration, quality): where to aim the reads.

    Scope: one asyncio event loop. A triggerer runs every trigger of its process in one loop for the
    process's life, so its waits share what they learned and a restarted triggerer starts afresh;
    :meth:`of_running_loop` is that loop's instance. Code outside a loop gets an empty one, and each
    ``asyncio.run`` (a test, a script) starts with nothing learned.
    """

    _per_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LearnedDurations]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, samples: int = LEARNED_SAMPLES) -> None:
        self.samples = samples
        self._times: dict[tuple[str, str, str], deque[float]] = {}

    @classmethod
    def of_running_loop(cls) -> LearnedDurations:
        """The running event loop's instance (a new, empty one outside a loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return cls()
        learned = cls._per_loop.get(loop)
        if learned is None:
            learned = cls._per_loop[loop] = cls()
        return learned

    @staticmethod
    def _key(family: str, duration: Any, quality: Any) -> tuple[str, str, str]:
        return (str(family), "" if duration is None else str(duration), "" if quality is None else str(quality).lower())

    def learn(self, family: str, duration: Any, quality: Any, seconds: float) -> None:
        """Remember that a generation of this kind took ``seconds`` from the start of its wait."""
        if not 0.0 < seconds < 24 * 3600:
            return
        times = self._times.setdefault(self._key(family, duration, quality), deque(maxlen=self.samples))
        times.append(float(seconds))

    def expected(self, family: str, duration: Any, quality: Any, given: float | None = None) -> float | None:
        """How long a generation of this kind should take, in seconds from the start of its wait.

        ``given`` (the operator's ``expected_duration``) wins; otherwise the median of the generation
        times learned for the same family, duration and quality; ``None`` when neither is known (KIE
        documents no generation times), and the wait then reads every ``poll_interval``.
        """
        if given is not None:
            return float(given) if given > 0 else None
        times = self._times.get(self._key(family, duration, quality))
        return statistics.median(times) if times else None


class Outcome(str, Enum):
    """What the wait does after a status read."""

    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    POLL = "poll"


class _Log(Protocol):
    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class WaitState:
    """What a wait has seen so far; plain JSON through :meth:`to_dict`, so a trigger or a reschedule keeps it.

    :param started_at: When the wait began, Unix epoch seconds (the 404 grace and ``waited`` count from it).
    :param seen: A status read has returned the task at least once.
    :param errors: Status reads that failed in a row.
    :param last_state: Normalised status of the last successful read.
    :param last_log: When the last progress line was logged, Unix epoch seconds.
    :param last_read_at: When the task was last read, Unix epoch seconds, if before this wait took over
        (an operator's read before deferring): the next read is placed after it, not at once.
    """

    started_at: float
    seen: bool = False
    errors: int = 0
    last_state: str | None = None
    last_log: float | None = None
    last_read_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "seen": self.seen,
            "errors": self.errors,
            "last_state": self.last_state,
            "last_log": self.last_log,
            "last_read_at": self.last_read_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WaitState:
        """Inverse of :meth:`to_dict`."""
        last_log, last_read_at = data.get("last_log"), data.get("last_read_at")
        return cls(
            started_at=float(data["started_at"]),
            seen=bool(data.get("seen", False)),
            errors=int(data.get("errors", 0)),
            last_state=data.get("last_state"),
            last_log=None if last_log is None else float(last_log),
            last_read_at=None if last_read_at is None else float(last_read_at),
        )


@dataclass(frozen=True)
class WaitDecision:
    """The answer to one status read.

    :param outcome: Done, failed, timed out, or poll again after ``delay`` seconds.
    :param state: The wait's state after this read, for the next :meth:`WaitPolicy.decide`.
    :param task: The task as last read, when known.
    :param message: Why the wait ended (empty while polling).
    :param delay: Seconds before the next read (``POLL`` only).
    :param remote: The generation itself failed: a new task costs credits again.
    :param retryable: Status reads kept failing: an Airflow retry may read the task and succeed.
    :param read_failed: This read failed and is worth repeating soon (``POLL`` only).
    :param log: A line for the task log, or ``None``.
    :param warn: Log ``log`` as a warning.
    """

    outcome: Outcome
    state: WaitState
    task: RunwayTask | None = None
    message: str = ""
    delay: float = 0.0
    remote: bool = False
    retryable: bool = False
    read_failed: bool = False
    log: str | None = None
    warn: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not Outcome.POLL

    @property
    def event_status(self) -> str:
        """The trigger event's ``status``: ``success``, ``failed`` (the remote task), ``timeout`` or ``error``."""
        if self.outcome is Outcome.DONE:
            return "success"
        if self.outcome is Outcome.TIMED_OUT:
            return "timeout"
        expired = self.task is not None and self.task.expired
        return "failed" if self.remote or expired else "error"

    def to_event(self, task_id: str, family: str) -> dict[str, Any]:
        """The trigger event: plain JSON."""
        return {
            "status": self.event_status,
            "task_id": task_id,
            "family": family,
            "task": self.task.to_dict() if self.task is not None else None,
            "message": self.message,
            "retryable": self.retryable,
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any], task_id: str) -> WaitDecision:
        """The final decision a trigger event carries (also from events of earlier provider versions)."""
        status = event.get("status")
        task_dict = event.get("task")
        task = RunwayTask.from_dict(task_dict) if isinstance(task_dict, Mapping) else None
        task_id = str(event.get("task_id") or task_id)
        message = str(event.get("message") or "")
        state = WaitState(started_at=0.0, seen=task is not None)
        if status in ("success", "failed") and task is not None and task.is_terminal:
            return WaitPolicy(task_id, poll_interval=1.0).decide(task, state, 0.0)  # the task's own words
        if status == "timeout":
            return cls(Outcome.TIMED_OUT, state, task, message or f"Runway task {task_id} did not finish in time")
        if status == "failed":
            remote = task is None or not task.expired
            return cls(Outcome.FAILED, state, task, message or f"Runway task {task_id} failed", remote=remote)
        message = message or f"Waiting for Runway task {task_id} failed: {dict(event)!r}"
        return cls(Outcome.FAILED, state, task, message, retryable=bool(event.get("retryable", False)))


def deadline_for(
    now: float,
    timeout: float,
    *,
    started_at: float | None = None,
    execution_timeout: float | None = None,
    reserve: float = 0.0,
) -> tuple[float, str]:
    """The absolute deadline of a wait, and what sets it: ``timeout`` from now, or an earlier ``execution_timeout``.

    :param now: The time the wait (or the deferral) starts, Unix epoch seconds.
    :param timeout: The wait's own limit, in seconds from ``now``.
    :param started_at: When the Airflow try started, from which ``execution_timeout`` counts.
    :param execution_timeout: The task's ``execution_timeout`` in seconds, if any.
    :param reserve: Seconds before the end of ``execution_timeout`` at which the wait ends, so the
        task still has time to report why.
    """
    deadline, source = now + timeout, f"timeout of {timeout:g} s"
    if execution_timeout is not None and started_at is not None:
        capped = started_at + execution_timeout - reserve
        if capped < deadline:
            return capped, f"execution_timeout of {execution_timeout:g} s"
    return deadline, source


class WaitPolicy:
    """
    The rules of waiting for one Runway task; :meth:`decide` judges each status read.

    - A succeeded task ends the wait; a succeeded task whose files expired fails it; a failed
      task (or a 501 on read) fails it as a remote failure.
    - A 404 before the task was ever seen, within ``not_found_grace`` seconds of the start, means
      "not visible yet"; any other 404 fails the wait.
    - A retryable read error (429, 455, 5xx, timeouts, malformed bodies) polls again after an
      exponential back-off (at least ``poll_interval``, at least the ``Retry-After``), until
      ``max_consecutive_errors`` reads in a row failed; then the wait fails, as retryable.
    - Any other read error (401, 402, a refused request) fails the wait at once.
    - Past ``deadline`` a wait that would poll again times out instead.

    :param task_id: The Runway task id.
    :param poll_interval: Seconds between two status reads.
    :param deadline: Absolute deadline, Unix epoch seconds; ``None`` waits without limit.
    :param deadline_source: What set the deadline, for the timeout message (e.g. ``timeout of 1800 s``).
    :param retry_delay: Base of the back-off after a failed read, in seconds (``None``: 1 s).
    :param max_consecutive_errors: Failed reads in a row that end the wait.
    :param not_found_grace: Seconds a 404 counts as "not visible yet".
    :param expected_end: When the generation should end, Unix epoch seconds, if known. Reads are then
        placed where the answer changes: before it at most ``poll_interval`` apart (no more reads than
        at a fixed interval) and timed so one lands :data:`AIM_PAST_END` seconds after it, then every
        :data:`FAST_POLL_INTERVAL` seconds up to :data:`FAST_WINDOW_READS` reads from that one, then
        every ``poll_interval`` again.
    """

    def __init__(
        self,
        task_id: str,
        *,
        poll_interval: float,
        deadline: float | None = None,
        deadline_source: str | None = None,
        retry_delay: float | None = None,
        max_consecutive_errors: int | None = None,
        not_found_grace: float | None = None,
        expected_end: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.expected_end = expected_end
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.deadline_source = deadline_source
        self.retry_delay = DEFAULT_RETRY_DELAY if retry_delay is None else float(retry_delay)
        self.max_consecutive_errors = (
            MAX_CONSECUTIVE_READ_ERRORS if max_consecutive_errors is None else int(max_consecutive_errors)
        )
        self.not_found_grace = NOT_FOUND_GRACE_SECONDS if not_found_grace is None else float(not_found_grace)

    def decide(self, read: RunwayTask | RunwayError, state: WaitState, now: float) -> WaitDecision:
        """Judge one status read: ``read`` is the task it returned or the error it raised."""
        if isinstance(read, RunwayTask):
            last_state = read.status.value
            if not state.seen or state.errors or state.last_state != last_state:  # most reads change nothing
                state = replace(state, seen=True, errors=0, last_state=last_state)
            return self._judge(read, state, now)
        return self._read_failed(read, state, now)

    def timed_out(self, state: WaitState, now: float, task: RunwayTask | None = None) -> WaitDecision:
        """The wait passed its deadline (also when a read was still running at the deadline)."""
        deadline = "no deadline"
        if self.deadline is not None:
            deadline = f"deadline {datetime.fromtimestamp(self.deadline, tz=timezone.utc).isoformat()}"
        limit = f"within the {self.deadline_source} ({deadline})" if self.deadline_source else f"before the {deadline}"
        message = (
            f"Runway task {self.task_id} did not finish {limit}: "
            f"waited {max(0.0, now - state.started_at):.1f} s, last state {state.last_state or 'unknown'}. "
            "It keeps running on KIE, which has no cancel endpoint."
        )
        return WaitDecision(Outcome.TIMED_OUT, state, task, message)

    def cannot_wait(self, state: WaitState, error: BaseException) -> WaitDecision:
        """The wait could not start (e.g. no such connection): fails, as retryable unless it is a Runway error."""
        shown = str(error) if isinstance(error, RunwayError) else f"{type(error).__name__}: {error}"
        message = f"Cannot wait for Runway task {self.task_id}: {shown}"
        return WaitDecision(Outcome.FAILED, state, message=message, retryable=not isinstance(error, RunwayError))

    def _judge(self, task: RunwayTask, state: WaitState, now: float) -> WaitDecision:
        if task.status is TaskStatus.SUCCEEDED:
            if task.expired:
                message = f"Runway task {self.task_id} succeeded but its files have expired (KIE keeps them 14 days)"
                return WaitDecision(Outcome.FAILED, state, task, message)
            message = f"Runway task {self.task_id} succeeded: {redact_url(task.video_url or '')}"
            return WaitDecision(Outcome.DONE, state, task, message)
        if task.status is TaskStatus.FAILED:
            failed = RunwayTaskFailedError(self.task_id, task.fail_code, task.fail_message)
            return WaitDecision(Outcome.FAILED, state, task, failed.message, remote=True)
        log = None
        if now >= self._next_progress_line(state):
            state = replace(state, last_log=now)
            shown = f"{task.status.value} ({task.raw_state or 'no state'})"
            log = f"Runway task {self.task_id} is {shown} after {now - state.started_at:.0f} s"
        return self._poll(state, now, self.pending_delay(now), task=task, log=log)

    def _next_progress_line(self, state: WaitState) -> float:
        """When the wait's next progress line is due: ``PROGRESS_LOG_INTERVAL`` after the last one.

        The first falls between a half and one and a half intervals into the wait, at a point set by the task
        id: a triggerer's waits that started together (a mapped batch) then log apart, not all in one turn of
        its event loop, where a thousand log lines block the loop for a third of a second.
        """
        if state.last_log is not None:
            return state.last_log + PROGRESS_LOG_INTERVAL
        spread = (zlib.crc32(self.task_id.encode()) % 1000) / 1000
        return state.started_at + PROGRESS_LOG_INTERVAL * (0.5 + spread)

    def pending_delay(self, now: float) -> float:
        """Seconds until the next read of a task still running at ``now`` (never more than ``poll_interval``)."""
        interval = self.poll_interval
        if self.expected_end is None or interval <= FAST_POLL_INTERVAL:
            return interval
        aim = self.expected_end + AIM_PAST_END
        gap = aim - now
        if gap > 1e-3:
            # Evenly spaced reads, as many as at a fixed poll_interval, the last one on the aim.
            return gap / math.ceil(gap / interval)
        if now < aim + (FAST_WINDOW_READS - 1) * FAST_POLL_INTERVAL - 1e-3:
            return FAST_POLL_INTERVAL
        return interval

    def _read_failed(self, error: RunwayError, state: WaitState, now: float) -> WaitDecision:
        if isinstance(error, RunwayNotFoundError):
            if not state.seen and now - state.started_at < self.not_found_grace:
                log = f"Runway task {self.task_id} is not visible yet (404); polling again"
                return self._poll(state, now, self.poll_interval, log=log)
            message = f"Runway task {self.task_id} was not found: {error}"
            return WaitDecision(Outcome.FAILED, state, message=message)
        if isinstance(error, RunwayGenerationError):
            code = None if error.code is None else str(error.code)
            failed = RunwayTaskFailedError(self.task_id, code, error.remote_message)
            return WaitDecision(Outcome.FAILED, state, message=failed.message, remote=True)
        if not error.retryable:
            return WaitDecision(Outcome.FAILED, state, message=f"Could not read Runway task {self.task_id}: {error}")
        errors = state.errors + 1
        state = replace(state, errors=errors)
        if errors >= self.max_consecutive_errors:
            message = (
                f"Could not read Runway task {self.task_id}: gave up after {errors} consecutive failed status reads; "
                f"last error: {error}"
            )
            return WaitDecision(Outcome.FAILED, state, message=message, retryable=True)
        retry_after = error.retry_after if isinstance(error, RunwayRateLimitedError) else None
        pause = max(self.poll_interval, backoff_delay(errors, self.retry_delay, retry_after, cap=MAX_ERROR_BACKOFF))
        log = (
            f"Reading Runway task {self.task_id} failed ({errors} of {self.max_consecutive_errors} in a row): "
            f"{error}; polling again in {pause:.1f} s"
        )
        return replace(self._poll(state, now, pause, log=log), read_failed=True, warn=True)

    def _poll(
        self, state: WaitState, now: float, delay: float, *, task: RunwayTask | None = None, log: str | None = None
    ) -> WaitDecision:
        if self.deadline is not None:
            if now >= self.deadline:
                return self.timed_out(state, now, task)
            delay = min(delay, self.deadline - now)  # the last read happens at the deadline
        return WaitDecision(Outcome.POLL, state, task, delay=max(0.0, delay), log=log)


def log_decision(log: _Log | None, decision: WaitDecision) -> None:
    """Write the decision's log line, if any."""
    if log is not None and decision.log:
        (log.warning if decision.warn else log.info)("%s", decision.log)


def wait_sync(
    read: Callable[[], RunwayTask],
    policy: WaitPolicy,
    state: WaitState | None = None,
    *,
    log: _Log | None = None,
    until_pending: bool = False,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> WaitDecision:
    """Read and judge until the wait ends; the blocking loop behind ``RunwayHook.wait_for_task`` and the sensor.

    :param read: One status read; raises :class:`RunwayError` when it fails.
    :param until_pending: Return the first ``POLL`` decision of a read that did not fail (a sensor's
        poke: a failed read is repeated within the poke, so the error count survives a reschedule).
    """
    clock = clock or time.time
    sleep = sleep or time.sleep
    state = state if state is not None else WaitState(started_at=clock())
    while True:
        try:
            result: RunwayTask | RunwayError = read()
        except RunwayError as error:
            result = error
        decision = policy.decide(result, state, clock())
        log_decision(log, decision)
        if decision.finished or (until_pending and not decision.read_failed):
            return decision
        state = decision.state
        sleep(decision.delay)
