"""The Airflow < 3.3 stand-in for ResumableJobMixin, which keeps the task id in an Airflow Variable."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_runway.operators import _resumable
from airflow_provider_runway.operators._resumable import VariableResumableJobMixin, record_key


class FakeJobOperator(VariableResumableJobMixin, BaseOperator):
    external_id_key = "runway_task_id"

    def __init__(self, *, remote: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote = remote
        self.submitted: list[str] = []
        self.polled: list[str] = []

    def submit_job(self, context: Any) -> str:
        job_id = f"job-{len(self.remote) + 1}"
        self.remote[job_id] = "running"
        self.submitted.append(job_id)
        return job_id

    def get_job_status(self, external_id: Any, context: Any) -> str:
        return self.remote[external_id]

    def is_job_active(self, status: str) -> bool:
        return status == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        self.polled.append(external_id)
        self.remote[external_id] = "succeeded"

    def get_job_result(self, external_id: Any, context: Any) -> str:
        return external_id


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    store: dict[str, Any] = {}
    fake = mock.MagicMock()
    fake.get.side_effect = lambda key, default=None: store.get(key, default)
    fake.set.side_effect = store.__setitem__
    fake.delete.side_effect = lambda key: store.pop(key, None)
    monkeypatch.setattr(_resumable, "Variable", fake)
    return store


@pytest.fixture
def context() -> dict[str, Any]:
    ti = mock.MagicMock(dag_id="dag", run_id="run", task_id="gen", map_index=3)
    return {"ti": ti}


def test_record_key_is_per_task_instance_and_map_index(context: dict[str, Any]) -> None:
    assert record_key(context, "runway_task_id") == "runway_provider_resume:dag:run:gen:3:runway_task_id"
    context["ti"].map_index = None
    assert record_key(context, "runway_task_id").endswith(":gen:-1:runway_task_id")


def test_first_try_stores_the_id_before_polling(variables: dict[str, Any], context: dict[str, Any]) -> None:
    remote: dict[str, str] = {}
    op = FakeJobOperator(remote=remote, task_id="gen")
    seen: list[dict[str, Any]] = []
    original = op.poll_until_complete
    op.poll_until_complete = lambda job, ctx: (seen.append(dict(variables)), original(job, ctx))  # type: ignore[method-assign]
    assert op.execute_resumable(context) == "job-1"
    assert seen == [{record_key(context, "runway_task_id"): "job-1"}]
    assert variables == {}  # removed once the task succeeded


@pytest.mark.parametrize(("status", "polled"), [("running", ["job-1"]), ("succeeded", [])])
def test_later_try_attaches(status: str, polled: list[str], variables: dict[str, Any], context: dict[str, Any]) -> None:
    variables[record_key(context, "runway_task_id")] = "job-1"
    op = FakeJobOperator(remote={"job-1": status}, task_id="gen")
    assert op.execute_resumable(context) == "job-1"
    assert op.submitted == []
    assert op.polled == polled


def test_later_try_resubmits_after_failure(variables: dict[str, Any], context: dict[str, Any]) -> None:
    variables[record_key(context, "runway_task_id")] = "job-1"
    op = FakeJobOperator(remote={"job-1": "failed"}, task_id="gen")
    assert op.execute_resumable(context) == "job-2"
    assert op.submitted == ["job-2"]


def test_not_durable_never_touches_variables(variables: dict[str, Any], context: dict[str, Any]) -> None:
    variables[record_key(context, "runway_task_id")] = "job-9"
    op = FakeJobOperator(remote={}, task_id="gen", durable=False)
    assert op.execute_resumable(context) == "job-1"
    assert variables == {record_key(context, "runway_task_id"): "job-9"}
