"""Fixtures of the operator unit tests: a task instance, a task state store, a mocked hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from airflow_provider_runway.core import RunwayTask, TaskFamily, TaskStatus, ValidationLimits


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
def context() -> dict[str, Any]:
    ti = mock.MagicMock(name="ti")
    ti.stats_tags = {}
    ti.xcom_pushes = {}
    ti.xcom_push.side_effect = lambda key, value: ti.xcom_pushes.__setitem__(key, value)
    return {"ti": ti, "task_state_store": FakeTaskStateStore()}


@pytest.fixture
def hook() -> mock.MagicMock:
    fake = mock.MagicMock(name="RunwayHook")
    fake.base_url = "https://api.kie.ai"
    fake.get_validation_limits.return_value = ValidationLimits()
    fake.create_task.return_value = "task-1"
    fake.get_task.return_value = build_task()
    return fake


@pytest.fixture(name="make_task")
def make_task_fixture() -> Callable[..., RunwayTask]:
    """Factory of normalised tasks (succeeded with a video and a thumbnail unless told otherwise)."""
    return build_task
