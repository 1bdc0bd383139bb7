"""The Airflow < 3.3 stand-in for ResumableJobMixin, which keeps the task id in an Airflow Variable."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    TaskDeferred,
)

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
def context(variables: Any) -> dict[str, Any]:
    ti = mock.MagicMock(dag_id="dag", run_id="run", task_id="gen", map_index=3, try_number=1)
    ti.task.retries = 0
    return {"ti": ti}


def test_record_key_is_per_task_instance_and_map_index(context: dict[str, Any]) -> None:
    assert record_key(context, "runway_task_id") == "runway_provider_resume:dag:run:gen:3:runway_task_id"
    context["ti"].map_index = None
    assert record_key(context, "runway_task_id").endswith(":gen:-1:runway_task_id")


def test_first_try_stores_the_id_before_polling(variables: Any, context: dict[str, Any]) -> None:
    remote: dict[str, str] = {}
    op = FakeJobOperator(remote=remote, task_id="gen")
    seen: list[dict[str, Any]] = []
    original = op.poll_until_complete
    op.poll_until_complete = lambda job, ctx: (seen.append(dict(variables.data)), original(job, ctx))  # type: ignore[method-assign]
    assert op.execute_resumable(context) == "job-1"
    assert seen == [{record_key(context, "runway_task_id"): "job-1"}]
    assert variables.data == {}  # removed once the task succeeded


@pytest.mark.parametrize(("status", "polled"), [("running", ["job-1"]), ("succeeded", [])])
def test_later_try_attaches(status: str, polled: list[str], variables: Any, context: dict[str, Any]) -> None:
    variables.data[record_key(context, "runway_task_id")] = "job-1"
    op = FakeJobOperator(remote={"job-1": status}, task_id="gen")
    assert op.execute_resumable(context) == "job-1"
    assert op.submitted == []
    assert op.polled == polled


def test_later_try_resubmits_after_failure(variables: Any, context: dict[str, Any]) -> None:
    variables.data[record_key(context, "runway_task_id")] = "job-1"
    op = FakeJobOperator(remote={"job-1": "failed"}, task_id="gen")
    assert op.execute_resumable(context) == "job-2"
    assert op.submitted == ["job-2"]


def test_not_durable_never_touches_variables(variables: Any, context: dict[str, Any]) -> None:
    variables.data[record_key(context, "runway_task_id")] = "job-9"
    op = FakeJobOperator(remote={}, task_id="gen", durable=False)
    assert op.execute_resumable(context) == "job-1"
    assert variables.data == {record_key(context, "runway_task_id"): "job-9"}


class Ends(Exception):
    """A failure Airflow would retry while retries are left."""


def run_ending_with(error: BaseException, variables: Any, context: dict[str, Any]) -> None:
    op = FakeJobOperator(remote={}, task_id="gen")

    def poll(job: Any, ctx: Any) -> None:
        raise error

    op.poll_until_complete = poll  # type: ignore[method-assign]
    with pytest.raises(type(error)):
        op.execute_resumable(context)


def test_deferral_keeps_the_record_for_execute_complete(variables: Any, context: dict[str, Any]) -> None:
    run_ending_with(TaskDeferred(trigger=mock.MagicMock(), method_name="execute_complete"), variables, context)
    assert variables.data == {record_key(context, "runway_task_id"): "job-1"}
    op = FakeJobOperator(remote={"job-1": "succeeded"}, task_id="gen")
    with op.resumed_scope(context):
        pass  # execute_complete returned a result
    assert variables.data == {}


@pytest.mark.parametrize(
    ("error", "try_number", "retries", "kept"),
    [
        (Ends("read failed"), 1, 2, True),  # a retry will attach
        (Ends("read failed"), 3, 2, False),  # the last try
        (AirflowFailException("not retried"), 1, 2, False),
        (AirflowSkipException("skipped"), 1, 2, False),
    ],
)
def test_record_kept_only_while_a_later_try_may_need_it(
    error: BaseException, try_number: int, retries: int, kept: bool, variables: Any, context: dict[str, Any]
) -> None:
    context["ti"].try_number = try_number
    context["ti"].task.retries = retries
    run_ending_with(error, variables, context)
    assert (record_key(context, "runway_task_id") in variables.data) is kept


def test_failure_after_deferral_on_the_last_try_removes_the_record(variables: Any, context: dict[str, Any]) -> None:
    variables.data[record_key(context, "runway_task_id")] = "job-1"
    op = FakeJobOperator(remote={"job-1": "running"}, task_id="gen")
    with pytest.raises(Ends), op.resumed_scope(context):
        raise Ends("trigger timed out")
    assert variables.data == {}
