"""The operators wait for a generation slot when the account's concurrency limit is reached (issue 14).

KIE refuses a create over the limit (body code 400 "Reached the limit for concurrent generations"), or
accepts it and fails the task with that message before charging. Neither created nor charged anything,
so the operators create again with back-off, inside the same try, until a slot frees up or the deadline.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_runway.core import RunwayConcurrencyLimitError, RunwayRateLimitedError, TaskStatus
from airflow_provider_runway.operators import _capacity, _deferral
from airflow_provider_runway.operators import runway as operator_module
from airflow_provider_runway.operators.runway import RunwayExtendOperator, RunwayGenerateOperator

CONCURRENCY = "Reached the limit for concurrent generations"


class FakeClock:
    """``time`` for the operator module: ``sleep`` advances ``time`` and is recorded."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    for module in (operator_module, _capacity, _deferral):  # the operator module and its helpers read the clock
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


def test_deferred_task_failed_for_concurrency_is_created_again_and_deferred_again(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    hook.create_task.side_effect = ["task-1", refused(), "task-2"]
    op = generate(hook, deferrable=True)
    log = quiet(op)
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    assert first.value.trigger.serialize()[1]["task_id"] == "task-1"
    failed = make_task("task-1", status=TaskStatus.FAILED, fail_code="400", fail_message=CONCURRENCY)
    event = {"status": "failed", "task_id": "task-1", "family": "runway", "task": failed.to_dict(), "message": ""}
    op = generate(hook, deferrable=True)
    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, event, **(first.value.kwargs or {}))
    assert second.value.trigger.serialize()[1]["task_id"] == "task-2"
    assert second.value.method_name == "execute_complete"
    kwargs = second.value.kwargs or {}
    assert kwargs["capacity_since"] == 1_800_000_000.0  # when the wait began, before the first pause
    assert kwargs["capacity_attempts"] == 2
    assert hook.create_task.call_count == 3
    assert context["ti"].xcom_pushes["runway_task_id"] == "task-2"
    assert resume_records.data == {"runway_task_id": "task-2"}
    assert capacity_warnings(log) == 1
    done = {"status": "success", "task_id": "task-2", "family": "runway", "task": make_task("task-2").to_dict()}
    op = generate(hook, deferrable=True)
    log = quiet(op)
    result = op.execute_complete(context, done, **kwargs)
    assert result["task_id"] == "task-2"
    assert capacity_warnings(log) == 0  # the wait was logged when it began, not on each resume


def test_a_deferrable_task_failed_at_once_is_replaced_before_deferring(
    hook: mock.MagicMock, context: dict[str, Any], clock: FakeClock, resume_records: Any, make_task: Any
) -> None:
    hook.create_task.side_effect = ["task-1", "task-2"]
    hook.get_task.side_effect = [
        make_task("task-1", status=TaskStatus.FAILED, fail_code="400", fail_message=CONCURRENCY),
        make_task("task-2", status=TaskStatus.PENDING),
    ]
    op = generate(hook, deferrable=True)
    quiet(op)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.trigger.serialize()[1]["task_id"] == "task-2"  # the triggerer never sees task-1
    assert hook.create_task.call_count == 2
    assert len(clock.sleeps) == 1
    assert resume_records.data == {"runway_task_id": "task-2"}


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
