"""The operators wait for a generation slot when the account's concurrency limit is reached (issue 14).

KIE refuses a create over the limit (body code 400 "Reached the limit for concurrent generations"), or
accepts it and fails the task with that message before charging. Neither created nor charged anything,
so the operators create again with back-off, inside the same try, until a slot frees up or the deadline.
A blocking operator pauses in place; a deferrable one defers each pause to Airflow's time trigger (issue 21).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_runway.core import (
    RunwayConcurrencyLimitError,
    RunwayRateLimitedError,
    RunwayTask,
    TaskFamily,
    TaskStatus,
)
from airflow_provider_runway.operators import _capacity
from airflow_provider_runway.operators import runway as operator_module
from airflow_provider_runway.operators._capacity import MAX_DEFERRED_PAUSE, MIN_DEFERRED_PAUSE
from airflow_provider_runway.operators.runway import RunwayExtendOperator, RunwayGenerateOperator
from airflow_provider_runway.transfer.uploads import UploadLimits
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from tests.harness.fakes import FakeClock

CONCURRENCY = "Reached the limit for concurrent generations"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    for module in (operator_module, _capacity):  # the operator module and its helper read the clock
        monkeypatch.setattr(module, "time", fake)
    return fake


def refused() -> RunwayConcurrencyLimitError:
    return RunwayConcurrencyLimitError(f"{CONCURRENCY} (limit 10)", code=400, http_status=200)


def generate(hook: mock.MagicMock, **kwargs: Any) -> RunwayGenerateOperator:
    op = RunwayGenerateOperator(task_id="gen", prompt="A fox in the snow", poll_interval=2, **kwargs)
    op.hook = hook
    return op


def quiet(op: Any) -> mock.MagicMock:
    """Replace the operator's logger by a mock, to count its lines."""
    log = mock.MagicMock(name="log")
    type(op).log = log  # restored by the fixture below
    return log


@pytest.fixture(autouse=True)
def _restore_log() -> Any:
    saved = RunwayGenerateOperator.__dict__.get("log")
    yield
    if saved is None:
        if "log" in RunwayGenerateOperator.__dict__:
            del RunwayGenerateOperator.log
    else:
        RunwayGenerateOperator.log = saved


def capacity_warnings(log: mock.MagicMock) -> int:
    return sum("KIE cannot take the task now" in str(call.args[0]) for call in log.warning.call_args_list)


def test_a_create_refused_for_concurrency_is_created_again_once_a_slot_frees(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    hook.create_task.side_effect = [refused(), refused(), refused(), "task-1"]
    op = generate(hook)
    log = quiet(op)
    result = op.execute(context)
    assert result["task_id"] == "task-1"
    assert hook.create_task.call_count == 4
    assert len(clock.sleeps) == 3
    assert clock.sleeps[0] <= 2  # back-off from poll_interval, growing
    assert max(clock.sleeps) <= 8
    assert capacity_warnings(log) == 1  # once per wait, not per retry
    assert resume_records.data == resume_records.after_success("task-1")


def test_a_create_still_rate_limited_after_the_http_retries_is_created_again_after_retry_after(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    limited = RunwayRateLimitedError("Too many requests", code=429, http_status=429, retry_after=7.0)
    hook.create_task.side_effect = [limited, "task-1"]
    op = generate(hook)
    log = quiet(op)
    assert op.execute(context)["task_id"] == "task-1"
    assert clock.sleeps[0] >= 7.0  # Retry-After honoured
    assert capacity_warnings(log) == 1
    assert resume_records.data == resume_records.after_success("task-1")


def test_waiting_for_a_slot_ends_at_the_timeout_and_leaves_the_try_to_airflow_retries(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    hook.create_task.side_effect = lambda request: (_ for _ in ()).throw(refused())
    op = generate(hook, timeout=120)
    quiet(op)
    with pytest.raises(AirflowException, match=r"KIE did not accept the task within the timeout of 120 s") as err:
        op.execute(context)
    assert not isinstance(err.value, AirflowFailException)  # nothing was charged: an Airflow retry is safe
    assert "Nothing was created or charged" in str(err.value)
    assert sum(clock.sleeps) == pytest.approx(120)  # the last pause ends at the deadline
    assert max(clock.sleeps) <= 30
    assert "runway_task_id" not in resume_records.data


def test_waiting_for_a_slot_ends_at_execution_timeout(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock
) -> None:
    hook.create_task.side_effect = lambda request: (_ for _ in ()).throw(refused())
    context["ti"].start_date = None  # counted from the start of execute()
    op = generate(hook, timeout=1800, execution_timeout=timedelta(seconds=45))
    quiet(op)
    with pytest.raises(AirflowException, match="execution_timeout of 45 s"):
        op.execute(context)
    assert sum(clock.sleeps) == pytest.approx(45)


def test_a_task_failed_for_concurrency_is_replaced_by_a_new_task_sync(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    hook.create_task.side_effect = ["task-1", "task-2"]
    hook.get_task.side_effect = [
        make_task("task-1", status=TaskStatus.FAILED, fail_code="400", fail_message=CONCURRENCY),
        make_task("task-2"),
    ]
    op = generate(hook)
    log = quiet(op)
    result = op.execute(context)
    assert result["task_id"] == "task-2"
    assert hook.create_task.call_count == 2
    assert len(clock.sleeps) == 1
    assert capacity_warnings(log) == 1
    assert context["ti"].xcom_pushes["runway_task_id"] == "task-2"
    # The failed task's id is replaced, so a later try attaches to the new task, never to the failed one.
    assert resume_records.data == resume_records.after_success("task-2")


def test_a_task_failed_for_another_reason_still_fails_the_task(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, make_task: Any
) -> None:
    hook.get_task.return_value = make_task(status=TaskStatus.FAILED, fail_code="400", fail_message="Inappropriate")
    with pytest.raises(AirflowFailException, match="Inappropriate"):
        generate(hook).execute(context)
    hook.create_task.assert_called_once()
    assert clock.sleeps == []


def paused(deferred: pytest.ExceptionInfo[TaskDeferred] | TaskDeferred, clock: FakeClock) -> float:
    """Seconds a deferral pauses for capacity: Airflow's time trigger, resuming in create_after_capacity_wait."""
    deferral = deferred.value if isinstance(deferred, pytest.ExceptionInfo) else deferred
    trigger = deferral.trigger
    assert type(trigger).__name__ == "DateTimeTrigger"
    assert deferral.method_name == "create_after_capacity_wait"
    assert deferral.timeout is None
    return float(trigger.moment.timestamp() - clock.now)  # type: ignore[attr-defined]


def resume_after_pause(
    hook: mock.MagicMock,
    context: dict[str, Any],
    clock: FakeClock,
    deferred: pytest.ExceptionInfo[TaskDeferred] | TaskDeferred,
    **kwargs: Any,
) -> Any:
    """A worker resuming when the time trigger fires: a fresh operator object, the deferral's kwargs."""
    deferral = deferred.value if isinstance(deferred, pytest.ExceptionInfo) else deferred
    clock.now = deferral.trigger.moment.timestamp()  # type: ignore[attr-defined]
    op = generate(hook, deferrable=True, **kwargs)
    quiet(op)
    return op.create_after_capacity_wait(context, event=None, **(deferral.kwargs or {}))


def test_a_deferrable_create_refused_for_capacity_frees_the_worker_until_the_next_attempt(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    hook.create_task.side_effect = [refused(), refused(), "task-1"]
    hook.get_task.return_value = make_pending("task-1")
    op = generate(hook, deferrable=True)
    log = quiet(op)
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    assert clock.sleeps == []  # nothing sleeps on the worker
    assert paused(first, clock) == MIN_DEFERRED_PAUSE  # the back-off from poll_interval, raised to the least pause
    assert first.value.kwargs == {"deferred_try": 1, "capacity_since": clock.now, "capacity_attempts": 1}
    assert hook.create_task.call_count == 1
    with pytest.raises(TaskDeferred) as second:
        resume_after_pause(hook, context, clock, first)
    assert hook.create_task.call_count == 2  # exactly one create per resume
    assert paused(second, clock) >= paused(first, clock)  # the back-off carries over from one deferral to the next
    assert second.value.kwargs["capacity_attempts"] == 2  # type: ignore[index]
    with pytest.raises(TaskDeferred) as waiting:
        resume_after_pause(hook, context, clock, second)
    assert hook.create_task.call_count == 3
    assert isinstance(waiting.value.trigger, RunwayTaskTrigger)  # accepted: the usual wait for the video
    assert waiting.value.trigger.serialize()[1]["task_id"] == "task-1"
    assert waiting.value.method_name == "execute_complete"
    assert resume_records.data == {"runway_task_id": "task-1"}
    assert capacity_warnings(log) == 1
    assert clock.sleeps == []


def pauses_while_refused(hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, timeout: float) -> Any:
    """The pauses of a deferrable create KIE keeps refusing: the first from ``execute``, then one per resume."""
    hook.create_task.side_effect = lambda request: (_ for _ in ()).throw(refused())
    op = generate(hook, deferrable=True, timeout=timeout)
    quiet(op)
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    deferral: Any = first.value
    yield paused(first, clock)
    while True:
        try:
            resume_after_pause(hook, context, clock, deferral, timeout=timeout)
        except TaskDeferred as again:
            deferral = again
            yield paused(again, clock)
        else:
            return


def test_a_deferrable_pause_for_capacity_honours_the_deadline_without_creating(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    pauses: list[float] = []
    with pytest.raises(AirflowException) as ended:
        pauses.extend(pauses_while_refused(hook, context, clock, timeout=60))
    assert not isinstance(ended.value, AirflowFailException)  # nothing was charged: an Airflow retry is safe
    assert "KIE did not accept the task within the timeout of 60 s" in str(ended.value)
    assert clock.now - 1_800_000_000.0 == pytest.approx(60)  # the last pause ends at the deadline
    assert min(pauses[:-1]) >= MIN_DEFERRED_PAUSE and max(pauses) <= 30  # the last one is cut short at the deadline
    assert hook.create_task.call_count == len(pauses) + 1  # one create per resume, one that found the deadline
    assert clock.sleeps == []
    assert "runway_task_id" not in resume_records.data


def test_deferred_attempts_thin_out_while_kie_stays_full(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any
) -> None:
    """Each deferred attempt is a task process: the least pause doubles (15, 30, 60 s), then stays at 60 s."""
    pauses = list(itertools.islice(pauses_while_refused(hook, context, clock, timeout=3600), 5))
    assert pauses == [MIN_DEFERRED_PAUSE, 2 * MIN_DEFERRED_PAUSE] + [MAX_DEFERRED_PAUSE] * 3
    assert hook.create_task.call_count == 5  # one create per attempt
    assert clock.sleeps == []


def test_a_resume_after_the_deadline_fails_without_creating(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock
) -> None:
    hook.create_task.side_effect = [refused(), "task-1"]
    op = generate(hook, deferrable=True, timeout=60)
    quiet(op)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    clock.now += 3600  # the triggerer was down: the time trigger fires an hour late
    op = generate(hook, deferrable=True, timeout=60)
    quiet(op)
    hook.create_task.side_effect = lambda request: (_ for _ in ()).throw(refused())
    with pytest.raises(AirflowException, match="within the timeout of 60 s"):
        op.create_after_capacity_wait(context, event=None, **(deferred.value.kwargs or {}))
    assert hook.create_task.call_count == 2  # the late resume asked KIE once, was refused, and gave up


def test_deferred_task_failed_for_concurrency_pauses_then_is_created_again(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    hook.create_task.side_effect = ["task-1", "task-2"]
    hook.get_task.return_value = make_pending("task-1")
    op = generate(hook, deferrable=True)
    log = quiet(op)
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    assert first.value.trigger.serialize()[1]["task_id"] == "task-1"
    failed = make_task("task-1", status=TaskStatus.FAILED, fail_code="400", fail_message=CONCURRENCY)
    event = {"status": "failed", "task_id": "task-1", "family": "runway", "task": failed.to_dict(), "message": ""}
    op = generate(hook, deferrable=True)
    with pytest.raises(TaskDeferred) as pause:
        op.execute_complete(context, event, **(first.value.kwargs or {}))
    assert paused(pause, clock) > 0
    assert pause.value.kwargs == {"deferred_try": 1, "capacity_since": clock.now, "capacity_attempts": 1}
    assert hook.create_task.call_count == 1  # nothing created while paused
    hook.get_task.return_value = make_pending("task-2")
    with pytest.raises(TaskDeferred) as second:
        resume_after_pause(hook, context, clock, pause)
    assert second.value.trigger.serialize()[1]["task_id"] == "task-2"
    assert second.value.method_name == "execute_complete"
    kwargs = second.value.kwargs or {}
    assert kwargs["capacity_since"] == 1_800_000_000.0  # when the wait began, before the first pause
    assert kwargs["capacity_attempts"] == 1
    assert hook.create_task.call_count == 2
    assert context["ti"].xcom_pushes["runway_task_id"] == "task-2"
    assert resume_records.data == {"runway_task_id": "task-2"}
    assert capacity_warnings(log) == 1
    done = {"status": "success", "task_id": "task-2", "family": "runway", "task": make_task("task-2").to_dict()}
    op = generate(hook, deferrable=True)
    log = quiet(op)
    result = op.execute_complete(context, done, **kwargs)
    assert result["task_id"] == "task-2"
    assert capacity_warnings(log) == 0  # the wait was logged when it began, not on each resume
    assert clock.sleeps == []


def test_a_deferrable_task_failed_at_once_pauses_in_the_triggerer_before_its_replacement(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    hook.create_task.side_effect = ["task-1", "task-2"]
    hook.get_task.side_effect = [
        make_task("task-1", status=TaskStatus.FAILED, fail_code="400", fail_message=CONCURRENCY),
        make_task("task-2", status=TaskStatus.PENDING),
    ]
    op = generate(hook, deferrable=True)
    quiet(op)
    with pytest.raises(TaskDeferred) as pause:
        op.execute(context)
    assert paused(pause, clock) > 0  # the Runway trigger never sees task-1
    with pytest.raises(TaskDeferred) as deferred:
        resume_after_pause(hook, context, clock, pause)
    assert deferred.value.trigger.serialize()[1]["task_id"] == "task-2"
    assert hook.create_task.call_count == 2
    assert clock.sleeps == []
    assert resume_records.data == {"runway_task_id": "task-2"}


def test_uploaded_inputs_are_not_uploaded_again_after_a_pause(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, tmp_path: Any
) -> None:
    image = tmp_path / "fox.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    hook.upload_file.return_value = "https://files.kie.test/fox.png"
    hook.create_task.side_effect = [refused(), "task-1"]
    hook.get_task.return_value = make_pending("task-1")
    hook.get_upload_limits.return_value = UploadLimits()
    op = RunwayGenerateOperator(task_id="gen", prompt="A fox", image_url=str(image), poll_interval=2, deferrable=True)
    op.hook = hook
    quiet(op)
    with pytest.raises(TaskDeferred) as pause:
        op.execute(context)
    assert pause.value.kwargs["uploaded"] == {"image_url": "https://files.kie.test/fox.png"}  # type: ignore[index]
    clock.now = pause.value.trigger.moment.timestamp()  # type: ignore[attr-defined]
    op = RunwayGenerateOperator(task_id="gen", prompt="A fox", image_url=str(image), poll_interval=2, deferrable=True)
    op.hook = hook
    quiet(op)
    with pytest.raises(TaskDeferred):
        op.create_after_capacity_wait(context, event=None, **(pause.value.kwargs or {}))
    hook.upload_file.assert_called_once()
    assert hook.create_task.call_args.args[0].image_url == "https://files.kie.test/fox.png"


def make_pending(task_id: str) -> Any:
    return RunwayTask(task_id=task_id, family=TaskFamily.RUNWAY, status=TaskStatus.PENDING, raw_state="waiting")


def test_a_deferrable_reattach_does_not_read_before_deferring(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    resume_records.set("runway_task_id", "old-task")
    hook.get_task.return_value = make_task("old-task", status=TaskStatus.RUNNING)
    with pytest.raises(TaskDeferred):
        generate(hook, deferrable=True).execute(context)
    assert hook.get_task.call_count == 1  # the mixin's status read only
    hook.create_task.assert_not_called()


# -- extending a 1080p source -------------------------------------------------------------------


def test_extend_of_a_known_1080p_source_fails_before_any_request(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = RunwayExtendOperator(
        task_id="ext", source_task_id="src-1", prompt="go on", source_quality="{{ params.q }}", poll_interval=1
    )
    op.hook = hook
    op.source_quality = "1080p"  # as rendered
    with pytest.raises(AirflowFailException, match=r"source_quality='1080p'.*1080p.*no Runway task was created"):
        op.execute(context)
    hook.create_task.assert_not_called()


def test_extend_with_a_literal_1080p_source_is_a_dag_error() -> None:
    with pytest.raises(ValueError, match="source_quality"):
        RunwayExtendOperator(task_id="ext", source_task_id="src-1", prompt="go on", source_quality="1080p")


@pytest.mark.parametrize("rendered", ["720p", None, "None", ""])
def test_extend_of_a_720p_or_unknown_source_is_created(
    rendered: Any, hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    op = RunwayExtendOperator(task_id="ext", source_task_id="src-1", prompt="go on", poll_interval=1)
    op.hook = hook
    op.source_quality = rendered
    assert op.execute(context)["task_id"] == "task-1"
    request = hook.create_task.call_args.args[0]
    assert request.source_quality == (None if rendered in (None, "None", "") else rendered)
    assert "sourceQuality" not in request.to_payload() and "source_quality" not in request.to_payload()


def test_extend_sends_image_url_and_expand_prompt_when_given(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = RunwayExtendOperator(
        task_id="ext",
        source_task_id="src-1",
        prompt="go on",
        image_url="https://files.example/guide.png",
        expand_prompt=True,
        poll_interval=1,
    )
    op.hook = hook
    op.execute(context)
    payload = hook.create_task.call_args.args[0].to_payload()
    assert payload["imageUrl"] == "https://files.example/guide.png"
    assert payload["expandPrompt"] is True
    assert {"image_url", "expand_prompt"} <= set(RunwayExtendOperator.template_fields)


def test_extend_with_a_bad_expand_prompt_is_a_dag_error_naming_it() -> None:
    with pytest.raises(ValueError, match="expand_prompt"):
        RunwayExtendOperator(task_id="ext", source_task_id="src-1", prompt="go on", expand_prompt="yes")  # type: ignore[arg-type]
