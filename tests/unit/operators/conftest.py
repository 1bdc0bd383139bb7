"""Fixtures of the operator unit tests: a task instance, a task state store, a mocked hook."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from airflow_provider_runway.core import RunwayTask, TaskFamily, TaskStatus, ValidationLimits
from airflow_provider_runway.core.pricing import price_table
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators import _resumable
from airflow_provider_runway.version_compat import AIRFLOW_V_3_3_PLUS


class FakeVariables:
    """In-memory stand-in for Airflow's ``Variable`` (the resume record below Airflow 3.3)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None, default_var: Any = None) -> Any:
        return self.data.get(key, default if default is not None else default_var)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class FakeTaskStateStore:
    """In-memory stand-in for Airflow 3.3's ``task_state_store``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value


def build_task(
    task_id: str = "task-1",
    status: TaskStatus = TaskStatus.SUCCEEDED,
    family: TaskFamily = TaskFamily.RUNWAY,
    **fields: Any,
) -> RunwayTask:
    if status is TaskStatus.SUCCEEDED:
        fields.setdefault("video_url", f"https://files.example/{task_id}.mp4")
        fields.setdefault("image_url", f"https://files.example/{task_id}.png")
    return RunwayTask(task_id=task_id, family=family, status=status, raw_state=status.value, **fields)


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    """The resume record's store, in memory (used by the operators below Airflow 3.3)."""
    fake = FakeVariables()
    monkeypatch.setattr(_resumable, "Variable", fake)
    return fake


@pytest.fixture
def context(variables: FakeVariables) -> dict[str, Any]:
    ti = mock.MagicMock(name="ti", dag_id="dag", run_id="run", task_id="gen", map_index=-1, try_number=1)
    ti.task.retries = 0
    ti.stats_tags = {}
    ti.xcom_pushes = {}
    ti.xcom_push.side_effect = lambda key, value: ti.xcom_pushes.__setitem__(key, value)
    return {"ti": ti, "task_state_store": FakeTaskStateStore()}


class ResumeRecords:
    """The task instance's resume records as ``{external_id_key: id}``, in whichever store this Airflow uses.

    Airflow 3.3 keeps them in ``task_state_store`` (for the task instance's lifetime); older versions in a
    Variable that the operator deletes once the task instance has ended for good.
    """

    def __init__(self, context: dict[str, Any], variables: FakeVariables) -> None:
        self.context, self.variables = context, variables

    def set(self, key: str, value: str) -> None:
        if AIRFLOW_V_3_3_PLUS:
            self.context["task_state_store"].set(key, value)
        else:
            self.variables.set(_resumable.record_key(self.context, key), value)

    @property
    def data(self) -> dict[str, Any]:
        if AIRFLOW_V_3_3_PLUS:
            return dict(self.context["task_state_store"].data)
        return {key.rsplit(":", 1)[1]: value for key, value in self.variables.data.items()}

    @staticmethod
    def after_success(task_id: str) -> dict[str, Any]:
        """What the store holds once the task instance succeeded."""
        return {"runway_task_id": task_id} if AIRFLOW_V_3_3_PLUS else {}


@pytest.fixture
def resume_records(context: dict[str, Any], variables: FakeVariables) -> ResumeRecords:
    return ResumeRecords(context, variables)


@pytest.fixture
def hook() -> mock.MagicMock:
    fake = mock.MagicMock(name="RunwayHook")
    fake.base_url = "https://api.kie.ai"
    fake.get_validation_limits.return_value = ValidationLimits()
    fake.get_price_table.return_value = price_table()
    fake.create_task.return_value = "task-1"
    fake.get_task.return_value = build_task()
    fake.retry_delay = 0.0
    # The real wait loop over the faked reads.
    fake.wait_for_task.side_effect = functools.partial(RunwayHook.wait_for_task, fake)
    return fake


@pytest.fixture(name="make_task")
def make_task_fixture() -> Callable[..., RunwayTask]:
    """Factory of normalised tasks (succeeded with a video and a thumbnail unless told otherwise)."""
    return build_task
