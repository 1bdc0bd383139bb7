"""Ending a deferred task in the triggerer: the same XComs, state and resume record as a worker resume.

The operator defers, the real trigger runs over faked status reads, and either the trigger's task-end event
(what the triggerer writes) or ``execute_complete`` on its plain event (what a worker does) finishes the task.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, Asset, TaskDeferred
from airflow.triggers.base import TriggerEvent

from airflow_provider_runway.core import RunwayTask, RunwayTaskTimeoutError, TaskStatus
from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.triggers import runway as trigger_module
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.version_compat import AIRFLOW_V_3_3_PLUS

from .conftest import FakeVariables, build_task


class FakeAsyncHook:
    def __init__(self, *reads: RunwayTask) -> None:
        self.reads = list(reads)

    async def __aenter__(self) -> FakeAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aget_task(self, task_id: str, family: Any = "runway") -> RunwayTask:
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


def run_trigger(trigger: RunwayTaskTrigger, *reads: RunwayTask) -> TriggerEvent:
    async def only_event() -> TriggerEvent:
        produced = [event async for event in trigger.run()]
        assert len(produced) == 1
        return produced[0]

    with mock.patch.object(trigger, "_hook", lambda: FakeAsyncHook(*reads)):
        return asyncio.run(only_event())


def ended_in_triggerer(event: TriggerEvent) -> bool:
    return hasattr(event, "task_instance_state")


@pytest.fixture(autouse=True)
def _variables_in_context(context: dict[str, Any], variables: FakeVariables) -> None:
    context["variables"] = variables  # for defer() to start each try afresh


@pytest.fixture
def variable_deletes(monkeypatch: pytest.MonkeyPatch, variables: FakeVariables) -> list[str]:
    """The trigger deletes the resume record in the same (faked) Variable store the operator uses."""
    deleted: list[str] = []

    async def delete(key: str) -> None:
        deleted.append(key)
        variables.delete(key)

    monkeypatch.setattr(trigger_module, "_delete_variable", delete)
    return deleted


def defer(op: RunwayGenerateOperator, hook: mock.MagicMock, context: dict[str, Any]) -> RunwayTaskTrigger:
    """A first try of the task instance: no resume record yet, so it creates the task and defers."""
    context["task_state_store"].data.clear()
    context["variables"].data.clear()
    context["ti"].xcom_pushes.clear()
    op.hook = hook  # type: ignore[misc]
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RunwayTaskTrigger)
    return trigger


def generate(**kwargs: Any) -> RunwayGenerateOperator:
    kwargs = {"task_id": "gen", "prompt": "A fox", "poll_interval": 0.01, "deferrable": True, **kwargs}
    return RunwayGenerateOperator(**kwargs)


def worker_xcoms(op: RunwayGenerateOperator, context: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """What Airflow stores for a worker run that returned ``result``: the pushes, the return value and its keys."""
    xcoms = dict(context["ti"].xcom_pushes)
    if op.multiple_outputs:
        xcoms.update(result)
    xcoms["return_value"] = result
    return xcoms


@pytest.mark.parametrize("multiple_outputs", [True, False])
def test_ending_in_the_triggerer_leaves_what_a_worker_resume_leaves(
    multiple_outputs: bool,
    hook: mock.MagicMock,
    context: dict[str, Any],
    resume_records: Any,
    variable_deletes: list[str],
) -> None:
    done = build_task("task-1", status=TaskStatus.SUCCEEDED)
    running = build_task("task-1", status=TaskStatus.RUNNING)

    # On a worker: the trigger's plain event, then execute_complete.
    resumed_op = generate(multiple_outputs=multiple_outputs, end_in_triggerer=False)
    trigger = defer(resumed_op, hook, context)
    assert trigger.serialize()[1]["task_end"] is None
    event = run_trigger(trigger, running, done)
    assert not ended_in_triggerer(event)
    result = resumed_op.execute_complete(context, event.payload, deferred_try=1)
    on_worker = worker_xcoms(resumed_op, context, result)
    records_on_worker = resume_records.data
    assert records_on_worker == resume_records.after_success("task-1")

    # In the triggerer: the same task instance again, from scratch.
    ended_op = generate(multiple_outputs=multiple_outputs)
    trigger = defer(ended_op, hook, context)
    kwargs = trigger.serialize()[1]["task_end"]
    assert kwargs is not None and kwargs["multiple_outputs"] is multiple_outputs
    assert (kwargs["resume_record"] is None) is AIRFLOW_V_3_3_PLUS
    event = run_trigger(trigger, running, done)
    assert ended_in_triggerer(event)
    assert str(event.task_instance_state) == "success"  # type: ignore[attr-defined]
    in_triggerer = {**context["ti"].xcom_pushes, **event.xcoms}  # type: ignore[attr-defined]

    assert in_triggerer == on_worker  # every key, every value
    assert resume_records.data == records_on_worker  # the Variable record is gone below 3.3, as on a worker
    assert variable_deletes == ([] if AIRFLOW_V_3_3_PLUS else [kwargs["resume_record"]])
    # A runner that ignores task-end events (dag.test) resumes with the payload: the usual success event.
    assert ended_op.execute_complete(context, event.payload, deferred_try=1) == result


@pytest.mark.parametrize(
    ("reads", "end_time", "error"),
    [
        ((build_task(status=TaskStatus.FAILED, fail_code="500", fail_message="boom"),), None, AirflowFailException),
        ((build_task(status=TaskStatus.SUCCEEDED, expired=True),), None, AirflowFailException),
        ((build_task(status=TaskStatus.RUNNING),), "past", RunwayTaskTimeoutError),
    ],
    ids=["failed", "expired", "timeout"],
)
def test_every_other_outcome_resumes_on_a_worker_exactly_as_before(
    reads: tuple[RunwayTask, ...],
    end_time: str | None,
    error: type[Exception],
    hook: mock.MagicMock,
    context: dict[str, Any],
    variable_deletes: list[str],
) -> None:
    outcomes = []
    for end_in_triggerer in (True, False):
        op = generate(end_in_triggerer=end_in_triggerer, timeout=timedelta(hours=1))
        trigger = defer(op, hook, context)
        if end_time == "past":
            trigger.end_time = time.time() - 1
        event = run_trigger(trigger, *reads)
        assert not ended_in_triggerer(event)
        with pytest.raises(error) as raised:
            op.execute_complete(context, event.payload, deferred_try=1)
        payload = {k: v for k, v in event.payload.items() if k != "message"}
        outcomes.append((payload, type(raised.value), str(raised.value).split(" (deadline")[0]))
    assert outcomes[0] == outcomes[1]
    assert variable_deletes == []


def test_without_task_end_events_the_task_resumes_on_a_worker(
    monkeypatch: pytest.MonkeyPatch, hook: mock.MagicMock, context: dict[str, Any], variable_deletes: list[str]
) -> None:
    monkeypatch.setattr(trigger_module, "task_end_event", lambda *args, **kwargs: None)
    op = generate()
    event = run_trigger(defer(op, hook, context), build_task("task-1"))
    assert not ended_in_triggerer(event) and event.payload["status"] == "success"
    assert (
        op.execute_complete(context, event.payload, deferred_try=1)["video_url"] == "https://files.example/task-1.mp4"
    )
    assert variable_deletes == []  # the worker deletes the record itself


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="3.3 keeps the task id in task_state_store, not a Variable")
def test_a_record_that_cannot_be_deleted_sends_the_task_to_a_worker(
    monkeypatch: pytest.MonkeyPatch, hook: mock.MagicMock, context: dict[str, Any], resume_records: Any
) -> None:
    async def refuse(key: str) -> None:
        raise OSError("the API server is away")

    monkeypatch.setattr(trigger_module, "_delete_variable", refuse)
    op = generate()
    event = run_trigger(defer(op, hook, context), build_task("task-1"))
    assert not ended_in_triggerer(event)
    assert resume_records.data == {"runway_task_id": "task-1"}
    op.execute_complete(context, event.payload, deferred_try=1)
    assert resume_records.data == {}


class PostExecuteGenerate(RunwayGenerateOperator):
    def post_execute(self, context: Any, result: Any = None) -> None:
        """A subclass's own post_execute: Airflow runs it after execute_complete."""


#: Operator settings after whose success Airflow still does something at a worker's end.
WORKER_END_SETTINGS = {
    "end_in_triggerer=False": {"end_in_triggerer": False},
    "download_to": {"download_to": "/tmp/videos"},
    "outlets": {"outlets": [Asset("s3://videos/fox")]},
    "on_success_callback": {"on_success_callback": lambda context: None},
    "on_execute_callback": {"on_execute_callback": lambda context: None},
    "post_execute argument": {"post_execute": lambda context, result=None: None},
    "map_index_template": {"map_index_template": "{{ task.prompt }}"},
}


def ends_here(op: RunwayGenerateOperator, hook: mock.MagicMock, context: dict[str, Any]) -> bool:
    return defer(op, hook, context).serialize()[1]["task_end"] is not None


def defer_logging(op: RunwayGenerateOperator, hook: mock.MagicMock, context: dict[str, Any]) -> str:
    """What the operator logs (INFO and up) while it creates its task and defers."""
    log = mock.MagicMock()
    with mock.patch.object(type(op), "log", new_callable=mock.PropertyMock, return_value=log):
        defer(op, hook, context)
    return "\n".join(c.args[0] % c.args[1:] for c in log.info.call_args_list + log.warning.call_args_list)


def test_a_plain_deferrable_task_ends_in_the_triggerer_and_says_so(
    hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    assert ends_here(generate(), hook, context)
    assert "On success this task ends in the triggerer" in defer_logging(generate(), hook, context)


@pytest.mark.parametrize("settings", WORKER_END_SETTINGS.values(), ids=WORKER_END_SETTINGS.keys())
def test_what_airflow_does_at_a_workers_end_keeps_the_task_on_the_worker(
    settings: dict[str, Any], hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    assert not ends_here(generate(**settings), hook, context)


def test_an_overridden_post_execute_keeps_the_task_on_the_worker(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = PostExecuteGenerate(task_id="gen", prompt="A fox", deferrable=True)
    assert not ends_here(op, hook, context)
    assert "resumes on a worker, for: pre_execute/post_execute" in defer_logging(op, hook, context)


def test_a_registered_listener_keeps_the_task_on_the_worker(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    manager = listener_manager()
    assert ends_here(generate(), hook, context)  # none registered in the tests' Airflow home
    manager.add_listener(SuccessListener)
    try:
        assert not ends_here(generate(), hook, context)
        logged = defer_logging(generate(), hook, context)
    finally:
        manager.clear()
    assert "resumes on a worker, for: listeners (e.g. OpenLineage)" in logged


@pytest.mark.parametrize(
    ("backend", "ends"),
    [
        ("tests.unit.operators.test_end_in_triggerer.CustomXCom", False),
        ("airflow.models.xcom.BaseXCom", True),
        ("airflow.sdk.execution_time.xcom.BaseXCom", True),
    ],
)
def test_a_custom_xcom_backend_keeps_the_task_on_the_worker(
    backend: str, ends: bool, monkeypatch: pytest.MonkeyPatch, hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__XCOM_BACKEND", backend)
    assert ends_here(generate(), hook, context) is ends


def test_a_mapped_task_downstream_keeps_its_upstream_on_the_worker(
    hook: mock.MagicMock, context: dict[str, Any]
) -> None:
    with DAG("mapped_downstream", schedule=None):
        upstream = generate(task_id="upstream")
        RunwayGenerateOperator.partial(task_id="extend", poll_interval=1).expand(prompt=upstream.output)
        alone = generate(task_id="alone")
    assert not ends_here(upstream, hook, context)  # a mapped task expands over its result: a worker records the length
    assert ends_here(alone, hook, context)


class SuccessListener:
    """A listener module stand-in: Airflow calls it for every task success at a worker's end."""

    @staticmethod
    def on_task_instance_success(previous_state: Any, task_instance: Any, **kwargs: Any) -> None:
        return None


class CustomXCom:
    """Named by ``[core] xcom_backend`` in a test; never imported (only the setting is read)."""


def listener_manager() -> Any:
    try:
        from airflow.sdk.listener import get_listener_manager
    except ImportError:
        from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef]
    return get_listener_manager()


def test_reads_are_placed_by_the_operators_arguments(hook: mock.MagicMock, context: dict[str, Any]) -> None:
    op = generate(
        poll_interval=5, first_poll_delay=timedelta(seconds=3), expected_duration=42, duration=10, quality="720p"
    )
    kwargs = defer(op, hook, context).serialize()[1]["schedule"]
    assert (kwargs["first_poll_delay"], kwargs["expected_duration"]) == (3.0, 42.0)
    assert (kwargs["duration"], kwargs["quality"]) == (10, "720p")
    assert generate().first_poll_delay == 0.0 and generate().expected_duration is None
    for name in ("first_poll_delay", "expected_duration"):
        with pytest.raises(ValueError, match=name):
            generate(**{name: -1})
