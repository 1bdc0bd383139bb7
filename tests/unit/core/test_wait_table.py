"""One table of status-read sequences through every way of waiting: each must end the same way.

Reads are faked at the hook level (``get_task`` / ``aget_task``); the 404 grace is shortened so the
table runs in a few seconds. Modes: the operator's synchronous wait (``RunwayHook.wait_for_task``),
the operator deferred (the trigger, then ``execute_complete``), and the sensor in ``poke``,
``reschedule`` (a new sensor object for every poke, as after a real reschedule) and deferrable mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    TaskDeferred,
)
from airflow.triggers.base import TriggerEvent

from airflow_provider_runway.core import wait as wait_module
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayError,
    RunwayNotFoundError,
    RunwayTaskTimeoutError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.core.wait import MAX_CONSECUTIVE_READ_ERRORS
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.sensors.runway import RunwayTaskSensor
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.triggers.task_end import task_end_supported
from tests.harness.fakes import FakeAsyncHook

try:  # where the Task SDK's sensors raise it (3.1 and later)
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 2.11 and 3.0
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef]

GRACE = 0.3
POLL = 0.02
SHORT_TIMEOUT = 0.4
#: Never dialled: reads are faked; the operator only builds its status link from the host.
CONNECTION = '{"conn_type": "runway", "host": "http://127.0.0.1:9", "password": "k"}'


def task(status: TaskStatus, **fields: Any) -> RunwayTask:
    if status is TaskStatus.SUCCEEDED:
        fields.setdefault("video_url", "https://cdn.test/t-1.mp4")
    return RunwayTask(task_id="t-1", family=TaskFamily.RUNWAY, status=status, raw_state=status.value, **fields)


PENDING, RUNNING, SUCCESS = task(TaskStatus.PENDING), task(TaskStatus.RUNNING), task(TaskStatus.SUCCEEDED)
NOT_FOUND = RunwayNotFoundError("task not found", code=404)
DOWN = RunwayUnavailableError("down", code=500)

#: (id, reads (the last one repeats), timeout, expected outcome, text of the message)
TABLE: list[tuple[str, list[Any], float, str, str]] = [
    ("pending", [PENDING, RUNNING, RUNNING, SUCCESS], 30, "success", ""),
    ("404 then found", [NOT_FOUND, NOT_FOUND, RUNNING, SUCCESS], 30, "success", ""),
    ("404 past grace", [NOT_FOUND], 30, "fail", "t-1 was not found"),
    ("transient x N-1", [DOWN] * (MAX_CONSECUTIVE_READ_ERRORS - 1) + [SUCCESS], 30, "success", ""),
    ("transient x N", [DOWN], 30, "retry", f"gave up after {MAX_CONSECUTIVE_READ_ERRORS} consecutive"),
    ("401", [RUNNING, RunwayAuthError("Invalid API key", code=401)], 30, "fail", "Invalid API key"),
    ("expired", [RUNNING, task(TaskStatus.SUCCEEDED, expired=True)], 30, "fail", "files have expired"),
    ("failed", [RUNNING, task(TaskStatus.FAILED, fail_code="400", fail_message="nsfw")], 30, "fail", "(fail code 400)"),
    ("deadline", [RUNNING], SHORT_TIMEOUT, "timeout", "did not finish within the"),
]


class Reads:
    """The remote side: answers each status read from the script; the last entry repeats."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.count = 0

    def next(self) -> RunwayTask:
        self.count += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, RunwayError):
            raise item
        return item  # type: ignore[no-any-return]

    def get_task(self, task_id: str, family: Any = "runway") -> RunwayTask:
        assert task_id == "t-1"
        return self.next()

    async def aget_task(self, task_id: str, family: Any = "runway") -> RunwayTask:
        assert task_id == "t-1"
        return self.next()


def classify(run: Callable[[], Any]) -> tuple[str, str]:
    """(outcome, message) of one wait: success, fail (no retry helps), retry, or timeout."""
    try:
        result = run()
    except (RunwayTaskTimeoutError, AirflowSensorTimeout) as err:
        return "timeout", str(err)
    except AirflowFailException as err:
        return "fail", str(err)
    except AirflowException as err:
        return "retry", str(err)
    assert result["task_id"] == "t-1" and result["state"] == "succeeded"
    return "success", ""


def ti_mock(start: datetime, first_reschedule: datetime | None = None) -> mock.MagicMock:
    ti = mock.MagicMock(name="ti", dag_id="dag", run_id="run", task_id="wait", map_index=-1, try_number=1)
    ti.start_date, ti.max_tries = start, 0
    ti.get_first_reschedule_date.return_value = first_reschedule
    return ti


def trigger_event(trigger: RunwayTaskTrigger, reads: Reads) -> TriggerEvent:
    async def first_event() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("no event")

    with mock.patch.object(trigger, "_hook", lambda: FakeAsyncHook(reads.aget_task)):
        return asyncio.run(first_event())


def run_trigger(trigger: RunwayTaskTrigger, reads: Reads) -> dict[str, Any]:
    event = trigger_event(trigger, reads)
    assert not hasattr(event, "task_instance_state"), "the task was ended in the triggerer"
    return dict(event.payload)


def operator(timeout: float, **kwargs: Any) -> RunwayGenerateOperator:
    op = RunwayGenerateOperator(task_id="gen", prompt="x", poll_interval=POLL, timeout=timeout, **kwargs)
    return op


def sync_wait(reads: Reads, timeout: float) -> Callable[[], Any]:
    op = operator(timeout)
    hook = RunwayHook("runway_default", retry_delay=0.0)
    hook.get_task = reads.get_task  # type: ignore[method-assign]
    op.hook = hook  # type: ignore[misc]
    context: Any = {"ti": ti_mock(datetime.now(timezone.utc))}

    def run() -> Any:
        op.poll_until_complete("t-1", context)
        return op.get_job_result("t-1", context)

    return run


def deferred_wait(reads: Reads, timeout: float, *, end_in_triggerer: bool = True) -> Callable[[], Any]:
    op = operator(timeout, deferrable=True, runway_retry_delay=0.0, end_in_triggerer=end_in_triggerer)
    context: Any = {"ti": ti_mock(datetime.now(timezone.utc))}

    def run() -> Any:
        with pytest.raises(TaskDeferred) as deferred:
            op.poll_until_complete("t-1", context)
        event = trigger_event(deferred.value.trigger, reads)
        if hasattr(event, "task_instance_state"):  # ended in the triggerer: only ever on success
            assert end_in_triggerer and task_end_supported()
            assert str(event.task_instance_state) == "success"
            return event.xcoms["return_value"]
        return op._complete(context, dict(event.payload))

    return run


def resumed_wait(reads: Reads, timeout: float) -> Callable[[], Any]:
    return deferred_wait(reads, timeout, end_in_triggerer=False)


def sensor(reads: Reads, timeout: float, **kwargs: Any) -> RunwayTaskSensor:
    op = RunwayTaskSensor(
        task_id="wait", runway_task_id="t-1", poke_interval=POLL, timeout=timeout, runway_retry_delay=0.0, **kwargs
    )
    hook = mock.MagicMock(name="RunwayHook")
    hook.get_task.side_effect = reads.get_task
    op.hook = hook  # type: ignore[misc]
    return op


def poke_wait(reads: Reads, timeout: float) -> Callable[[], Any]:
    return lambda: sensor(reads, timeout, mode="poke").execute({"ti": ti_mock(datetime.now(timezone.utc))})


def reschedule_wait(reads: Reads, timeout: float) -> Callable[[], Any]:
    """Every poke on a new sensor object, as after a real reschedule; Airflow keeps the first try's start."""

    def run() -> Any:
        first = datetime.now(timezone.utc)
        for pokes in range(1000):
            ti = ti_mock(datetime.now(timezone.utc), first if pokes else None)
            context: Any = {"ti": ti, "task_reschedule_count": pokes}
            with mock.patch(
                "airflow.sensors.base._orig_start_date", return_value=first if pokes else None, create=True
            ):
                try:
                    return sensor(reads, timeout, mode="reschedule").execute(context)
                except AirflowRescheduleException:
                    asyncio.run(asyncio.sleep(POLL))
        raise AssertionError("the sensor never ended")

    return run


def deferrable_sensor_wait(reads: Reads, timeout: float) -> Callable[[], Any]:
    op = sensor(reads, timeout, deferrable=True)
    context: Any = {"ti": ti_mock(datetime.now(timezone.utc))}

    def run() -> Any:
        try:
            return op.execute(context)
        except TaskDeferred as deferred:
            return op.execute_complete(context, run_trigger(deferred.trigger, reads))

    return run


MODES: dict[str, Callable[[Reads, float], Callable[[], Any]]] = {
    "sync": sync_wait,
    "deferrable": deferred_wait,
    "deferrable-resume": resumed_wait,
    "sensor-poke": poke_wait,
    "sensor-reschedule": reschedule_wait,
    "sensor-deferrable": deferrable_sensor_wait,
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(("reads", "timeout", "outcome", "text"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE])
def test_same_reads_same_outcome_in_every_mode(
    mode: str, reads: list[Any], timeout: float, outcome: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wait_module, "NOT_FOUND_GRACE_SECONDS", GRACE)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT", '{"conn_type": "runway", "host": "http://127.0.0.1:9", "password": "k"}'
    )
    remote = Reads(reads)
    got, message = classify(MODES[mode](remote, timeout))
    assert got == outcome, message
    if outcome == "timeout" and mode.startswith("sensor"):
        # Both raise AirflowSensorTimeout; between reschedules Airflow's own timeout check may come first.
        assert text in message or "Sensor has timed out" in message, message
    else:
        assert text in message
