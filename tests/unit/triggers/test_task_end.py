"""Unit tests of the task-end helper: the event carries the XComs a worker resume would push."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.triggers import task_end as task_end_module
from airflow_provider_runway.triggers.task_end import (
    task_end_event,
    task_end_supported,
    task_end_xcoms,
    worker_end_reasons,
)
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS

#: A result whose unknown fields are None, as KIE leaves them (no creation time, no failure).
NONE_KEYS = ["created_at", "fail_code", "fail_message"]
RESULT = {
    **RunwayTask(
        task_id="t-1",
        family=TaskFamily.RUNWAY,
        status=TaskStatus.SUCCEEDED,
        raw_state="success",
        video_url="https://cdn.test/v.mp4",
    ).to_dict(),
    **dict.fromkeys(NONE_KEYS),
}
#: Airflow 3.0 cannot store a None XCom: there the operators leave those keys out (storable_result).
DROPS_NONE = AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS


def test_task_end_follows_airflows_event_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Supported exactly when Airflow defines ``TaskSuccessEvent``, and the event is that class."""
    import airflow.triggers.base as airflow_triggers

    assert task_end_supported() is hasattr(airflow_triggers, "TaskSuccessEvent")
    monkeypatch.setattr(task_end_module, "TaskSuccessEvent", mock.Mock(name="TaskSuccessEvent"))
    assert task_end_event(RESULT, multiple_outputs=False) is task_end_module.TaskSuccessEvent.return_value


def test_a_bare_task_leaves_nothing_for_a_worker() -> None:
    assert worker_end_reasons(SimpleNamespace(outlets=[], on_success_callback=None)) == []


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"outlets": ["an asset"]}, "outlets (asset events)"),
        ({"on_success_callback": [print]}, "on_success_callback"),
        ({"map_index_template": ""}, "map_index_template (rendered at the end)"),
        ({"_post_execute_hook": print}, "pre_execute/post_execute"),
    ],
)
def test_each_task_setting_is_named(setting: dict[str, Any], reason: str) -> None:
    assert worker_end_reasons(SimpleNamespace(**setting)) == [reason]


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"AIRFLOW__CORE__XCOM_BACKEND": "my.CustomXCom"}, "a custom [core] xcom_backend"),
        pytest.param(
            {"AIRFLOW__WORKERS__STATE_STORE_BACKEND": "my.Store", "AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS": "True"},
            "a [workers] state_store_backend cleared on success",
            marks=pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="worker state stores are new in Airflow 3.3"),
        ),
    ],
)
def test_each_deployment_setting_is_named(env: dict[str, str], reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert worker_end_reasons(SimpleNamespace()) == [reason]


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 has no lineage backend")
def test_a_lineage_backend_is_named_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__LINEAGE__BACKEND", "my.Backend")
    assert worker_end_reasons(SimpleNamespace()) == ["a [lineage] backend"]


@pytest.mark.parametrize("multiple_outputs", [False, True])
def test_event_ends_task_successfully_with_the_result(multiple_outputs: bool) -> None:
    event = task_end_event(RESULT, multiple_outputs=multiple_outputs)

    assert event is not None
    assert type(event).__name__ == "TaskSuccessEvent"
    assert str(event.task_instance_state) == "success"  # type: ignore[attr-defined]
    xcoms = event.xcoms  # type: ignore[attr-defined]
    expected = {k: v for k, v in RESULT.items() if not (DROPS_NONE and multiple_outputs and v is None)}
    assert xcoms["return_value"] == expected
    if multiple_outputs:
        assert set(xcoms) == {"return_value", *expected}
        assert all(xcoms[key] == value for key, value in expected.items())
    else:
        assert set(xcoms) == {"return_value"}


def test_none_values_dropped_only_on_airflow_3_0() -> None:
    xcoms = task_end_xcoms(RESULT, multiple_outputs=True)
    present = [key for key in NONE_KEYS if key in xcoms]
    assert present == ([] if DROPS_NONE else NONE_KEYS)
    assert ("fail_code" in xcoms["return_value"]) is not DROPS_NONE


def test_without_do_xcom_push_nothing_is_pushed() -> None:
    event = task_end_event(RESULT, multiple_outputs=True, do_xcom_push=False)
    assert event is not None
    assert event.xcoms is None  # type: ignore[attr-defined]


def test_extra_xcoms_are_pushed_with_or_without_the_return_value() -> None:
    extra = {"runway_result_url": "https://cdn.test/v.mp4"}
    with_result = task_end_xcoms(RESULT, multiple_outputs=False, extra_xcoms=extra)
    assert with_result == {"runway_result_url": "https://cdn.test/v.mp4", "return_value": RESULT}
    assert task_end_xcoms(RESULT, multiple_outputs=True, do_xcom_push=False, extra_xcoms=extra) == extra


def test_return_value_wins_over_a_key_of_the_same_name() -> None:
    xcoms = task_end_xcoms({"return_value": "inner", "a": 1}, multiple_outputs=True)
    assert xcoms["return_value"] == {"return_value": "inner", "a": 1}
    assert xcoms["a"] == 1


def test_result_must_be_a_dict() -> None:
    with pytest.raises(TypeError, match="result must be a dict"):
        task_end_event(["not", "a", "dict"], multiple_outputs=False)  # type: ignore[arg-type]


def test_falls_back_to_worker_resume_without_task_end_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_end_module, "TaskSuccessEvent", None)
    assert task_end_supported() is False
    assert task_end_event(RESULT, multiple_outputs=True) is None


def _worker_pushes(result: dict[str, Any], multiple_outputs: bool) -> dict[str, Any]:
    """What Airflow 3's task runner pushes when ``execute_complete`` returns ``result``."""
    from airflow.sdk.execution_time import task_runner

    pushed: dict[str, Any] = {}
    ti = SimpleNamespace(
        task=SimpleNamespace(
            do_xcom_push=True,
            multiple_outputs=multiple_outputs,
            iter_mapped_dependants=lambda: iter(()),
            returns_dag_result=False,
        ),
        is_mapped=True,
        dag_id="d",
        task_id="t",
        run_id="r",
        map_index=0,
        xcom_push=lambda key, value: pushed.__setitem__(key, value),
    )
    fake_xcom = mock.Mock()
    fake_xcom.set.side_effect = lambda key, value, **_: pushed.__setitem__(key, value)
    with mock.patch.object(task_runner, "XCom", fake_xcom):
        task_runner._push_xcom_if_needed(result, ti, mock.Mock())  # type: ignore[arg-type]
    return pushed


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 3's task runner")
@pytest.mark.parametrize("multiple_outputs", [False, True])
def test_same_xcoms_as_the_task_runner_pushes(multiple_outputs: bool) -> None:
    # The operators return storable_result(...); the worker pushes that.
    returned = task_end_module.storable_result(RESULT, multiple_outputs)
    event = task_end_event(RESULT, multiple_outputs=multiple_outputs)
    assert event is not None
    assert event.xcoms == _worker_pushes(returned, multiple_outputs)  # type: ignore[attr-defined]


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 3's triggerer sends events to its supervisor")
def test_event_survives_the_triggerer_channel() -> None:
    """The trigger subprocess sends events as JSON; the supervisor must read back a task-end event."""
    from airflow.triggers.base import DiscrimatedTriggerEvent
    from pydantic import TypeAdapter

    event = task_end_event(RESULT, multiple_outputs=True)
    assert isinstance(event, TriggerEvent)
    adapter: TypeAdapter[Any] = TypeAdapter(DiscrimatedTriggerEvent)
    back = adapter.validate_json(adapter.dump_json(event))

    assert type(back).__name__ == "TaskSuccessEvent"
    assert back.xcoms == event.xcoms  # type: ignore[attr-defined]
    assert str(back.task_instance_state) == "success"  # type: ignore[union-attr]
