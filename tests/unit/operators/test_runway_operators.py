from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_runway.core import (
    RunwayAuthError,
    RunwayCreateUncertainError,
    RunwayGenerationError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayParameterError,
    RunwayRequestRejectedError,
    RunwayTaskTimeoutError,
    RunwayTransportError,
    RunwayUnavailableError,
    TaskFamily,
    TaskStatus,
)
from airflow_provider_runway.core import wait as wait_module
from airflow_provider_runway.core.results import RESULT_KEYS
from airflow_provider_runway.core.wait import MAX_CONSECUTIVE_READ_ERRORS
from airflow_provider_runway.operators import _capacity
from airflow_provider_runway.operators import download as download_module
from airflow_provider_runway.operators import runway as operator_module
from airflow_provider_runway.operators.runway import (
    RunwayAlephOperator,
    RunwayExtendOperator,
    RunwayGenerateOperator,
)
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from tests.harness.fakes import FakeClock

VIDEO = "https://files.example/in.mp4"


def assert_result_keys(result: dict[str, Any]) -> None:
    """Every result key, in order; Airflow 3.0 cannot store a None XCom, so there the None-valued keys are left out."""
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        assert list(result) == [key for key in RESULT_KEYS if key in result]
        assert None not in result.values()
    else:
        assert tuple(result) == RESULT_KEYS


def generate(**kwargs: Any) -> RunwayGenerateOperator:
    kwargs.setdefault("task_id", "gen")
    kwargs.setdefault("prompt", "A fox in the snow")
    kwargs.setdefault("poll_interval", 0.01)
    return RunwayGenerateOperator(**kwargs)


def attach(op: Any, hook: mock.MagicMock) -> Any:
    op.hook = hook  # replaces the cached_property value
    return op


# -- validation at construction (DAG import time) ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quality": "1080p", "duration": 10}, "quality"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"prompt": "   "}, "prompt"),
        ({"duration": 7}, "duration"),
        ({"image_url": "ftp://host/x.png"}, "image_url"),
        ({"aspect_ratio": None}, "aspect_ratio"),
        ({"seed": -1}, "seed"),
        ({"callback_url": "not a url"}, "callback_url"),
    ],
)
def test_generate_static_mistake_is_an_import_error_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RunwayParameterError) as err:
        generate(**kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_extend_and_aleph_validate_at_construction() -> None:
    with pytest.raises(RunwayParameterError, match="source_task_id"):
        RunwayExtendOperator(task_id="ext", source_task_id="has space", prompt="more")
    with pytest.raises(RunwayParameterError, match="video_url"):
        RunwayAlephOperator(task_id="aleph", prompt="make it night", video_url="")
    with pytest.raises(RunwayParameterError, match="aspect_ratio"):
        RunwayAlephOperator(task_id="aleph", prompt="make it night", video_url=VIDEO, aspect_ratio="2:1")
    with pytest.raises(RunwayParameterError, match="upload_cn"):
        RunwayAlephOperator(task_id="aleph", prompt="make it night", video_url=VIDEO, upload_cn="yes")


def test_templated_values_are_not_validated_at_construction() -> None:
    op = generate(prompt="{{ params.prompt }}", duration="{{ params.duration }}", quality="1080p")
    assert op.prompt == "{{ params.prompt }}"
    RunwayAlephOperator(task_id="aleph", prompt="x", video_url="{{ ti.xcom_pull('up') }}", aspect_ratio="21:9")


def test_xcomarg_source_task_id_is_accepted_and_wires_the_dependency() -> None:
    with DAG("chain", schedule=None, start_date=datetime(2026, 1, 1)):
        gen = generate()
        ext = RunwayExtendOperator(task_id="ext", source_task_id=gen.output["task_id"], prompt="and then")
    assert "gen" in ext.upstream_task_ids


def test_static_literals_still_validated_when_other_fields_are_templated() -> None:
    with pytest.raises(RunwayParameterError, match="quality"):
        generate(prompt="{{ params.p }}", quality="4k")


def test_defaults() -> None:
    op = generate()
    assert op.multiple_outputs is True
    assert op.timeout == 1800
    assert op.wait_for_completion is True
    assert op.deferrable is False
    aleph = RunwayAlephOperator(task_id="aleph", prompt="x", video_url=VIDEO, timeout=timedelta(minutes=2))
    assert aleph.timeout == 120
    assert RunwayAlephOperator(task_id="a2", prompt="x", video_url=VIDEO).timeout == 3600
    assert {"prompt", "image_url", "callback_url", "download_to"} <= set(op.template_fields)
    with pytest.raises(RunwayParameterError, match="timeout"):
        generate(timeout=0)


# -- validation at execute (rendered values) ------------------------------------------------------


def test_rendered_invalid_value_fails_without_creating(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = attach(generate(duration="{{ params.d }}", quality="1080p"), hook)
    op.duration = "10"  # what rendering produced
    with pytest.raises(AirflowFailException, match="quality"):
        op.execute(context)
    hook.create_task.assert_not_called()


def test_rendered_strings_are_coerced(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    op = attach(
        RunwayAlephOperator(task_id="aleph", prompt="x", video_url=VIDEO, upload_cn="{{ params.cn }}", seed="{{ s }}"),
        hook,
    )
    op.upload_cn, op.seed = "True", "None"
    hook.get_task.return_value = make_task(family=TaskFamily.ALEPH)
    op.execute(context)
    request = hook.create_task.call_args.args[0]
    assert request.upload_cn is True
    assert request.seed is None


def test_connection_limits_apply_at_execute(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    from airflow_provider_runway.core import ValidationLimits

    hook.get_validation_limits.return_value = ValidationLimits(max_prompt_length=10)
    op = attach(generate(prompt="a prompt longer than ten characters"), hook)
    with pytest.raises(AirflowFailException, match="prompt"):
        op.execute(context)
    hook.create_task.assert_not_called()


# -- the synchronous path --------------------------------------------------------------------------


def test_execute_creates_pushes_id_before_waiting_and_returns_the_result(
    hook: mock.MagicMock, context: dict[str, Any], resume_records: Any, make_task: Any
) -> None:
    pushed_before_first_poll: list[bool] = []

    def get_task(task_id: str, family: Any) -> Any:
        pushed_before_first_poll.append("runway_task_id" in context["ti"].xcom_pushes)
        if len(pushed_before_first_poll) < 3:
            return make_task(status=TaskStatus.RUNNING)
        return make_task(video_id="v1")

    hook.get_task.side_effect = get_task
    op = attach(generate(image_url="https://files.example/cat.png", aspect_ratio=None), hook)
    result = op.execute(context)

    assert pushed_before_first_poll == [True, True, True]
    assert context["ti"].xcom_pushes["runway_task_id"] == "task-1"
    assert resume_records.data == resume_records.after_success("task-1")
    assert_result_keys(result)
    assert result["task_id"] == "task-1"
    assert result["state"] == "succeeded"
    assert result["video_url"] == "https://files.example/task-1.mp4"
    assert result["video_id"] == "v1"
    assert context["ti"].xcom_pushes["runway_result_url"] == "https://files.example/task-1.mp4"
    request = hook.create_task.call_args.args[0]
    assert request.to_payload()["imageUrl"] == "https://files.example/cat.png"
    hook.get_task.assert_called_with("task-1", TaskFamily.RUNWAY)


def test_link_points_to_status_endpoint_until_the_video_exists(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = attach(generate(wait_for_completion=False), hook)
    result = op.execute(context)
    assert result == {"task_id": "task-1", "family": "runway", "state": "pending"}
    assert context["ti"].xcom_pushes["runway_result_url"] == (
        "https://api.kie.ai/api/v1/runway/record-detail?taskId=task-1"
    )
    hook.get_task.assert_not_called()


def test_remote_failure_fails_without_retry_by_default(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any
) -> None:
    hook.get_task.return_value = make_task(
        status=TaskStatus.FAILED, fail_code="400", fail_message="Inappropriate content detected"
    )
    with pytest.raises(AirflowFailException, match=r"task-1 failed \(fail code 400\): Inappropriate content"):
        attach(generate(), hook).execute(context)


def test_remote_failure_is_retryable_when_opted_in(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any
) -> None:
    hook.get_task.return_value = make_task(status=TaskStatus.FAILED, fail_code="500", fail_message="boom")
    with pytest.raises(AirflowException, match="boom") as err:
        attach(generate(retry_remote_failures=True), hook).execute(context)
    assert not isinstance(err.value, AirflowFailException)


def test_expired_result_says_so(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    hook.get_task.return_value = make_task(expired=True)
    with pytest.raises(AirflowFailException, match="expired"):
        attach(generate(), hook).execute(context)


def test_timeout_names_task_id_and_time_waited(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    hook.get_task.return_value = make_task(status=TaskStatus.PENDING)
    op = attach(generate(timeout=0.05, poll_interval=0.01), hook)
    expected = r"task-1 did not finish within the timeout of 0.05 s .*waited \d+\.\d s"
    with pytest.raises(RunwayTaskTimeoutError, match=expected):
        op.execute(context)
    assert hook.get_task.call_count >= 2


def test_transient_read_errors_are_survived(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    hook.get_task.side_effect = [RunwayUnavailableError("down", code=455), make_task(status=TaskStatus.RUNNING)] * 2 + [
        make_task()
    ]
    assert attach(generate(), hook).execute(context)["state"] == "succeeded"


def test_too_many_consecutive_read_errors_end_the_wait(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    hook.get_task.side_effect = RunwayUnavailableError("down", code=500)
    with pytest.raises(AirflowException, match="Could not read Runway task task-1: gave up after 5") as err:
        attach(generate(), hook).execute(context)
    assert not isinstance(err.value, AirflowFailException)  # a retry attaches to the same task
    assert hook.get_task.call_count == MAX_CONSECUTIVE_READ_ERRORS


def test_not_found_right_after_create_is_polled_again(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any
) -> None:
    hook.get_task.side_effect = [RunwayNotFoundError("Task not found", code=404)] * 4 + [make_task()]
    assert attach(generate(), hook).execute(context)["state"] == "succeeded"


def test_not_found_after_the_task_was_seen_ends_the_wait(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any
) -> None:
    hook.get_task.side_effect = [make_task(status=TaskStatus.RUNNING), RunwayNotFoundError("gone", code=404)]
    with pytest.raises(AirflowException, match="task-1 was not found"):
        attach(generate(), hook).execute(context)


def test_generation_error_on_read_is_a_remote_failure(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    hook.get_task.side_effect = RunwayGenerationError("generation failed", code=501)
    with pytest.raises(AirflowFailException, match=r"task-1 failed \(fail code 501\): generation failed"):
        attach(generate(), hook).execute(context)


def test_non_retryable_read_error_ends_the_wait_at_once(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    hook.get_task.side_effect = RunwayAuthError("bad key", code=401)
    with pytest.raises(AirflowException, match="bad key"):
        attach(generate(), hook).execute(context)
    assert hook.get_task.call_count == 1


@pytest.mark.parametrize(
    "error",
    [
        RunwayAuthError("Invalid API key", code=401),
        RunwayInsufficientCreditsError("insufficient credits", code=402),
        RunwayRequestRejectedError("bad", code=400),
        RunwayRequestRejectedError("invalid", code=422),
        RunwayRequestRejectedError("image unreachable", code=451),
        RunwayRequestRejectedError("disabled", code=505),
        RunwayCreateUncertainError("sent but no answer"),
    ],
)
def test_final_create_errors_fail_without_retry(
    error: Exception, hook: mock.MagicMock, context: dict[str, Any], resume_records: Any
) -> None:
    hook.create_task.side_effect = error
    with pytest.raises(AirflowFailException):
        attach(generate(), hook).execute(context)
    assert resume_records.data == {}


@pytest.mark.parametrize(
    "error",
    [  # a 429 the HTTP retries could not ride out is waited out within the try (test_concurrency_wait.py)
        RunwayUnavailableError("maintenance", code=455),
        RunwayTransportError("refused", request_sent=False),
    ],
)
def test_create_errors_before_any_task_exists_stay_retryable(
    error: Exception, hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    hook.create_task.side_effect = error
    with pytest.raises(type(error)):
        attach(generate(), hook).execute(context)


# -- resume instead of resubmit -----------------------------------------------------------------


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_retry_attaches_to_an_active_task(
    status: TaskStatus, hook: mock.MagicMock, context: dict[str, Any], resume_records: Any, make_task: Any
) -> None:
    resume_records.set("runway_task_id", "old-task")
    hook.get_task.side_effect = [make_task("old-task", status=status), make_task("old-task")]
    result = attach(generate(), hook).execute(context)
    hook.create_task.assert_not_called()
    assert result["task_id"] == "old-task"
    assert result["video_url"] == "https://files.example/old-task.mp4"
    assert context["ti"].xcom_pushes["runway_task_id"] == "old-task"


def test_retry_returns_a_succeeded_task_without_creating(
    hook: mock.MagicMock, context: dict[str, Any], resume_records: Any, make_task: Any
) -> None:
    resume_records.set("runway_task_id", "old-task")
    hook.get_task.return_value = make_task("old-task")
    result = attach(generate(), hook).execute(context)
    hook.create_task.assert_not_called()
    assert hook.get_task.call_count == 1
    assert result["task_id"] == "old-task"


def test_retry_after_a_failed_task_creates_a_new_one(
    hook: mock.MagicMock, context: dict[str, Any], resume_records: Any, make_task: Any
) -> None:
    resume_records.set("runway_task_id", "old-task")
    hook.get_task.side_effect = [make_task("old-task", status=TaskStatus.FAILED, fail_message="x"), make_task()]
    result = attach(generate(), hook).execute(context)
    hook.create_task.assert_called_once()
    assert result["task_id"] == "task-1"
    assert resume_records.data == resume_records.after_success("task-1")


def test_deferrable_retry_reattaches_through_the_trigger(
    hook: mock.MagicMock, context: dict[str, Any], resume_records: Any, make_task: Any
) -> None:
    resume_records.set("runway_task_id", "old-task")
    hook.get_task.return_value = make_task("old-task", status=TaskStatus.RUNNING)
    with pytest.raises(TaskDeferred) as exc:
        attach(generate(deferrable=True), hook).execute(context)
    hook.create_task.assert_not_called()
    assert exc.value.trigger.serialize()[1]["task_id"] == "old-task"
    # A task this try did not create: the wait starts in the trigger.
    assert exc.value.trigger.serialize()[1]["wait_state"] is None


# -- deferrable ---------------------------------------------------------------------------------


def test_deferrable_defers_with_the_right_trigger(
    hook: mock.MagicMock, context: dict[str, Any], resume_records: Any
) -> None:
    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    op = attach(
        RunwayAlephOperator(
            task_id="aleph",
            prompt="x",
            video_url=VIDEO,
            deferrable=True,
            poll_interval=2,
            timeout=600,
            runway_conn_id="kie",
            runway_retry_limit=3,
            runway_retry_delay=0.5,
        ),
        hook,
    )
    before = __import__("time").time()
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    trigger = exc.value.trigger
    assert isinstance(trigger, RunwayTaskTrigger)
    assert exc.value.method_name == "execute_complete"
    assert exc.value.timeout is None
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_runway.triggers.runway.RunwayTaskTrigger"
    assert kwargs["task_id"] == "task-1"
    assert kwargs["family"] == "aleph"
    assert kwargs["runway_conn_id"] == "kie"
    assert kwargs["poll_interval"] == 2
    assert kwargs["http_retry"]["limit"] == 3
    assert kwargs["http_retry"]["delay"] == 0.5
    assert before + 600 <= kwargs["end_time"] <= before + 660
    assert context["ti"].xcom_pushes["runway_task_id"] == "task-1"
    assert resume_records.data == {"runway_task_id": "task-1"}  # kept for execute_complete
    # One read of the new task before deferring (KIE fails a create over the concurrency limit at once).
    hook.get_task.assert_called_once_with("task-1", TaskFamily.ALEPH)
    # The trigger's wait starts at the creation, and its first read follows that one on the schedule.
    state = kwargs["wait_state"]
    assert before <= state["started_at"] <= state["last_read_at"] <= __import__("time").time()
    assert state["seen"] is True


@pytest.mark.parametrize("has_start_date", [True, False], ids=["start_date", "no-start_date"])
def test_execution_timeout_caps_the_triggers_deadline(
    has_start_date: bool, hook: mock.MagicMock, context: dict[str, Any], make_task: Any
) -> None:
    import time

    started = time.time() - 10
    context["ti"].start_date = datetime.fromtimestamp(started, tz=timezone.utc) if has_start_date else None
    op = attach(generate(deferrable=True, timeout=1800, execution_timeout=timedelta(seconds=60)), hook)
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    kwargs = exc.value.trigger.serialize()[1]
    assert kwargs["deadline_source"] == "execution_timeout of 60 s"
    # Airflow 2 ends the wait a little early (a tenth of execution_timeout, at most 5 s) so it can report why.
    reserve = 0 if AIRFLOW_V_3_0_PLUS else 5
    if has_start_date:
        assert kwargs["end_time"] == pytest.approx(started + 60 - reserve)
    else:  # counted from the start of execute()
        assert time.time() + 60 - reserve - 5 <= kwargs["end_time"] <= time.time() + 60 - reserve
    hook.get_task.return_value = make_task(status=TaskStatus.RUNNING)  # the retry reattaches to the task
    op = attach(generate(deferrable=True, timeout=30, execution_timeout=timedelta(seconds=60)), hook)
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    assert exc.value.trigger.serialize()[1]["deadline_source"] == "timeout of 30 s"


def event(status: str, task: Any = None, message: str = "") -> dict[str, Any]:
    return {
        "status": status,
        "task_id": "task-1",
        "family": "runway",
        "task": task.to_dict() if task is not None else None,
        "message": message,
    }


def test_execute_complete_success(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    result = attach(generate(deferrable=True), hook).execute_complete(context, event("success", make_task()))
    assert_result_keys(result)
    assert result["video_url"] == "https://files.example/task-1.mp4"
    assert context["ti"].xcom_pushes["runway_result_url"] == result["video_url"]


def test_execute_complete_failed(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    failed = make_task(status=TaskStatus.FAILED, fail_code="400", fail_message="Inappropriate content detected")
    with pytest.raises(AirflowFailException, match=r"fail code 400.*Inappropriate content detected"):
        attach(generate(), hook).execute_complete(context, event("failed", failed, "Runway task task-1 failed"))


def test_execute_complete_failed_without_task(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    with pytest.raises(AirflowFailException, match="generation failed"):
        attach(generate(), hook).execute_complete(context, event("failed", None, "generation failed"))


def test_execute_complete_expired(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    with pytest.raises(AirflowFailException, match="expired"):
        attach(generate(), hook).execute_complete(context, event("failed", make_task(expired=True), "expired"))


def test_execute_complete_timeout(hook: mock.MagicMock, context: dict[str, Any], make_task: Any) -> None:
    message = "Runway task task-1 did not finish within 1800 s (waited 1800 s)"
    with pytest.raises(RunwayTaskTimeoutError, match="task-1 did not finish"):
        attach(generate(), hook).execute_complete(
            context, event("timeout", make_task(status=TaskStatus.RUNNING), message)
        )


def test_execute_complete_error(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    retryable = {**event("error", None, "too many errors"), "retryable": True}
    with pytest.raises(AirflowException, match="too many errors") as err:
        attach(generate(), hook).execute_complete(context, retryable)
    assert not isinstance(err.value, AirflowFailException)
    with pytest.raises(AirflowFailException, match="bad key"):
        attach(generate(), hook).execute_complete(context, event("error", None, "bad key"))


# -- download_to, on_kill, link, mapping ---------------------------------------------------------


def test_download_to_merges_persisted_paths(
    hook: mock.MagicMock, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def persist_or_fail(task: Any, destination: Any, *, hook: Any) -> dict[str, Any]:
        calls.append((task["task_id"], destination, hook))
        return {"video_path": "/data/task-1.mp4", "video_size": 10, "thumbnail_path": None, "thumbnail_size": None}

    monkeypatch.setattr(download_module, "persist_or_fail", persist_or_fail)
    result = attach(generate(download_to="/data"), hook).execute(context)
    assert calls == [("task-1", "/data", hook)]
    assert result["video_path"] == "/data/task-1.mp4"
    assert result["task_id"] == "task-1"


def test_download_to_is_not_called_on_failure(
    hook: mock.MagicMock, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch, make_task: Any
) -> None:
    persist = mock.MagicMock()
    monkeypatch.setattr(download_module, "persist_or_fail", persist)
    hook.get_task.return_value = make_task(status=TaskStatus.FAILED, fail_message="nope")
    with pytest.raises(AirflowFailException):
        attach(generate(download_to="/data"), hook).execute(context)
    persist.assert_not_called()


def test_on_kill_logs_that_the_remote_task_continues(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = attach(generate(wait_for_completion=False), hook)
    op.execute(context)
    with mock.patch.object(type(op), "log", new_callable=mock.PropertyMock) as log:
        op.on_kill()
    message = log.return_value.warning.call_args.args
    assert "no cancel endpoint" in message[0]
    assert message[1] == "task-1"


def test_extra_link_reads_the_pushed_url() -> None:
    from airflow_provider_runway.links.runway import RunwayTaskLink

    op = generate()
    assert [link.name for link in op.operator_extra_links] == ["Runway Result"]
    with mock.patch("airflow_provider_runway.links.runway.XCom.get_value") as get:
        assert RunwayTaskLink().get_link(op, ti_key=mock.sentinel.key) == ""  # nothing was created
    get.assert_not_called()
    op.runway_task_id = "task-1"
    with mock.patch("airflow_provider_runway.links.runway.XCom.get_value", return_value="https://x/v.mp4") as get:
        assert RunwayTaskLink().get_link(op, ti_key=mock.sentinel.key) == "https://x/v.mp4"
    get.assert_called_once_with(ti_key=mock.sentinel.key, key="runway_result_url")
    with mock.patch("airflow_provider_runway.links.runway.XCom.get_value", return_value=None):
        assert RunwayTaskLink().get_link(op, ti_key=mock.sentinel.key) == ""


def test_partial_validates_its_literals() -> None:
    with pytest.raises(RunwayParameterError, match="quality"):
        RunwayGenerateOperator.partial(task_id="gen", quality="1080p", duration=10)
    with pytest.raises(RunwayParameterError, match="video_url"):
        RunwayAlephOperator.partial(task_id="aleph", video_url="ftp://host/clip.mp4")  # file:// is uploaded now
    # Fields left for expand() are not judged: no image yet does not make aspect_ratio=None wrong.
    RunwayGenerateOperator.partial(task_id="animate", aspect_ratio=None).expand(image_url=["https://x/a.png"])


def test_partial_expand_over_prompts() -> None:
    with DAG("mapped", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = RunwayGenerateOperator.partial(task_id="gen", duration=5).expand(
            prompt=[f"prompt {i}" for i in range(20)]
        )
    assert mapped.operator_class is RunwayGenerateOperator
    assert mapped.expand_input.value["prompt"][19] == "prompt 19"


def test_partial_takes_durable() -> None:
    """``durable`` (whether a retry attaches to the stored task) can be set on a mapped task, on every Airflow."""
    with DAG("mapped_durable", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = RunwayGenerateOperator.partial(task_id="gen", durable=False).expand(prompt=["a", "b"])
    assert mapped.partial_kwargs["durable"] is False


def test_progress_is_logged_at_most_every_30_seconds(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(now=1000.0)
    monkeypatch.setattr(wait_module, "time", clock)
    hook.get_task.side_effect = [make_task(status=TaskStatus.RUNNING)] * 10 + [make_task()]
    attach(generate(poll_interval=10), hook).execute(context)
    progress = [c.args[1] for c in hook.log.info.call_args_list if " is running " in c.args[1]]
    seconds = [int(line.split(" after ")[1].removesuffix(" s")) for line in progress]
    assert progress == [f"Runway task task-1 is running (running) after {s} s" for s in seconds]
    assert 15 <= seconds[0] <= 50  # the first between 15 and 45 s, on the next read (every 10 s)
    assert all(later - earlier >= 30 for earlier, later in itertools.pairwise(seconds))
    assert len(seconds) == 2  # 100 s of reads every 10 s: at most 3 lines 30 s apart, the first after 15-45 s
    assert clock.sleeps == [10] * 10


def test_sync_wait_sleeps_no_longer_than_the_deadline(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(now=1000.0)
    monkeypatch.setattr(wait_module, "time", clock)
    for module in (operator_module, _capacity):  # the operator module and its helper read the clock
        monkeypatch.setattr(module, "time", clock)
    hook.get_task.return_value = make_task(status=TaskStatus.PENDING)
    with pytest.raises(RunwayTaskTimeoutError, match=r"within the timeout of 25 s .*: waited 25.0 s"):
        attach(generate(poll_interval=10, timeout=25), hook).execute(context)
    assert clock.sleeps == [10, 10, 5]
    assert hook.get_task.call_count == 4


def test_static_mistake_is_reported_as_a_dag_import_error(tmp_path: Any) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag

    (tmp_path / "bad_runway_dag.py").write_text(
        "from datetime import datetime\n"
        "from airflow.providers.common.compat.sdk import DAG\n"
        "from airflow_provider_runway.operators.runway import RunwayGenerateOperator\n"
        "with DAG('bad_runway', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    RunwayGenerateOperator(task_id='gen', prompt='x', quality='1080p', duration=10)\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.dags == {}
    (error,) = bag.import_errors.values()
    assert "Invalid quality='1080p': 1080p is only available with duration=5" in error


@pytest.mark.parametrize("message", ["Incorrect image format.", "Unsupported width or height (4000x10)"])
def test_a_task_failed_for_bad_input_is_not_retried_even_when_remote_failures_are(
    hook: mock.MagicMock, context: dict[str, Any], make_task: Any, message: str
) -> None:
    hook.get_task.return_value = make_task(status=TaskStatus.FAILED, fail_code="400", fail_message=message)
    with pytest.raises(AirflowFailException, match=rf"{message[:20]}.*not retried \(the input was refused\)"):
        attach(generate(retry_remote_failures=True), hook).execute(context)
