from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_runway.core import (
    RunwayAuthError,
    RunwayGenerationError,
    RunwayNotFoundError,
    RunwayParameterError,
    RunwayTask,
    RunwayUnavailableError,
    TaskFamily,
    TaskStatus,
)
from airflow_provider_runway.sensors.runway import RunwayTaskSensor


def task(status: TaskStatus = TaskStatus.SUCCEEDED, **fields: Any) -> RunwayTask:
    if status is TaskStatus.SUCCEEDED:
        fields.setdefault("video_url", "https://files.example/t1.mp4")
    return RunwayTask(task_id="t1", family=TaskFamily.RUNWAY, status=status, raw_state=status.value, **fields)


@pytest.fixture
def hook() -> mock.MagicMock:
    fake = mock.MagicMock(name="RunwayHook")
    fake.get_task.return_value = task()
    return fake


def sensor(hook: mock.MagicMock, **kwargs: Any) -> RunwayTaskSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("runway_task_id", "t1")
    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("runway_retry_delay", 0.0)
    op = RunwayTaskSensor(**kwargs)
    op.hook = hook  # type: ignore[misc]
    return op


def test_defaults_and_template_fields(hook: mock.MagicMock) -> None:
    op = sensor(hook, poke_interval=30)
    assert op.family is TaskFamily.RUNWAY
    assert op.poke_interval == 30
    assert "runway_task_id" in op.template_fields
    with pytest.raises(RunwayParameterError, match="family"):
        sensor(hook, family="sora")
    with pytest.raises(RunwayParameterError, match="runway_task_id"):
        sensor(hook, runway_task_id="  ")
    assert sensor(hook, runway_task_id="{{ ti.xcom_pull('submit') }}").runway_task_id.startswith("{{")


def test_poke_pending_then_done(hook: mock.MagicMock) -> None:
    op = sensor(hook, family="aleph")
    hook.get_task.return_value = task(TaskStatus.RUNNING)
    assert not op.poke({})
    hook.get_task.assert_called_with("t1", TaskFamily.ALEPH)
    hook.get_task.return_value = task()
    done = op.poke({})
    assert done.is_done
    assert done.xcom_value["video_url"] == "https://files.example/t1.mp4"
    assert done.xcom_value["state"] == "succeeded"


def test_poke_transient_error_is_read_again_within_the_poke(hook: mock.MagicMock) -> None:
    down = RunwayUnavailableError("down", code=500)
    hook.get_task.side_effect = [down, down, task(TaskStatus.RUNNING)]
    assert not sensor(hook).poke({})
    assert hook.get_task.call_count == 3


def test_poke_gives_up_after_consecutive_transient_errors(hook: mock.MagicMock) -> None:
    hook.get_task.side_effect = RunwayUnavailableError("down", code=500)
    with pytest.raises(AirflowException, match="gave up after 5 consecutive failed status reads") as err:
        sensor(hook).poke({})
    assert not isinstance(err.value, AirflowFailException)  # a retry may read the task again


def test_poke_non_retryable_error_fails(hook: mock.MagicMock) -> None:
    hook.get_task.side_effect = RunwayAuthError("Invalid API key", code=401)
    with pytest.raises(AirflowFailException, match="Invalid API key"):
        sensor(hook).poke({})


def test_poke_not_found_before_first_sight_keeps_poking(hook: mock.MagicMock) -> None:
    op = sensor(hook)
    hook.get_task.side_effect = RunwayNotFoundError("Task not found", code=404)
    assert not op.poke({})
    hook.get_task.side_effect = None
    hook.get_task.return_value = task(TaskStatus.RUNNING)
    assert not op.poke({})
    hook.get_task.side_effect = RunwayNotFoundError("gone", code=404)
    with pytest.raises(AirflowFailException, match="t1 was not found"):
        op.poke({})


def test_poke_generation_error_fails(hook: mock.MagicMock) -> None:
    hook.get_task.side_effect = RunwayGenerationError("generation failed", code=501)
    with pytest.raises(AirflowFailException, match="t1 failed"):
        sensor(hook).poke({})


def test_execute_poke_mode_returns_the_task(hook: mock.MagicMock) -> None:
    hook.get_task.side_effect = [task(TaskStatus.PENDING), task(TaskStatus.RUNNING), task()]
    result = sensor(hook).execute({})
    assert result["task_id"] == "t1"
    assert hook.get_task.call_count == 3


def test_remote_failure_fails_the_sensor(hook: mock.MagicMock) -> None:
    hook.get_task.return_value = task(TaskStatus.FAILED, fail_code="400", fail_message="Inappropriate content")
    with pytest.raises(AirflowFailException, match=r"t1 failed \(fail code 400\): Inappropriate content"):
        sensor(hook).execute({})


def test_remote_failure_with_soft_fail_skips(hook: mock.MagicMock) -> None:
    hook.get_task.return_value = task(TaskStatus.FAILED, fail_message="nope")
    with pytest.raises(AirflowSkipException):
        sensor(hook, soft_fail=True).execute({})


def test_expired_result_fails(hook: mock.MagicMock) -> None:
    hook.get_task.return_value = task(expired=True)
    with pytest.raises(AirflowFailException, match="expired"):
        sensor(hook).execute({})


def test_poke_mode_timeout(hook: mock.MagicMock) -> None:
    hook.get_task.return_value = task(TaskStatus.PENDING)
    with pytest.raises(AirflowSensorTimeout):
        sensor(hook, timeout=0.05).execute({})


def test_deferrable_defers_when_not_finished(hook: mock.MagicMock) -> None:
    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    hook.get_task.return_value = task(TaskStatus.RUNNING)
    before = time.time()
    with pytest.raises(TaskDeferred) as exc:
        sensor(hook, deferrable=True, family="aleph", poke_interval=7, timeout=100).execute({})
    trigger = exc.value.trigger
    assert isinstance(trigger, RunwayTaskTrigger)
    assert exc.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert kwargs["task_id"] == "t1"
    assert kwargs["family"] == "aleph"
    assert kwargs["poll_interval"] == 7
    assert before + 100 <= kwargs["end_time"] <= before + 160


def test_deferrable_returns_at_once_when_already_finished(hook: mock.MagicMock) -> None:
    assert sensor(hook, deferrable=True).execute({})["state"] == "succeeded"


def event(status: str, payload: RunwayTask | None, message: str = "") -> dict[str, Any]:
    return {
        "status": status,
        "task_id": "t1",
        "family": "runway",
        "task": payload.to_dict() if payload else None,
        "message": message,
    }


def test_execute_complete_success(hook: mock.MagicMock) -> None:
    assert sensor(hook).execute_complete({}, event("success", task()))["video_url"] == "https://files.example/t1.mp4"


def test_execute_complete_failed(hook: mock.MagicMock) -> None:
    failed = task(TaskStatus.FAILED, fail_code="501", fail_message="generation failed")
    with pytest.raises(AirflowFailException, match="generation failed"):
        sensor(hook).execute_complete({}, event("failed", failed, "Runway task t1 failed"))
    with pytest.raises(AirflowFailException, match="expired"):
        sensor(hook).execute_complete({}, event("failed", task(expired=True), "expired"))
    with pytest.raises(AirflowFailException, match="no task"):
        sensor(hook).execute_complete({}, event("failed", None, "no task"))


def test_execute_complete_timeout_and_error(hook: mock.MagicMock) -> None:
    with pytest.raises(AirflowSensorTimeout, match="waited 10 s"):
        sensor(hook).execute_complete({}, event("timeout", task(TaskStatus.RUNNING), "t1 waited 10 s"))
    with pytest.raises(AirflowException, match="too many errors"):
        sensor(hook).execute_complete({}, event("error", None, "too many errors"))


def test_soft_fail_on_resume_skips(hook: mock.MagicMock) -> None:
    op = sensor(hook, soft_fail=True)
    failed = event("failed", task(TaskStatus.FAILED, fail_message="x"))
    with pytest.raises(AirflowSkipException):
        op.resume_execution("execute_complete", {"event": failed}, {})
