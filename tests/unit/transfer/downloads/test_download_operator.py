"""RunwayDownloadOperator and persist_or_fail with mocked HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
import responses
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_runway.core.results import RunwayTask
from airflow_provider_runway.operators.download import RunwayDownloadOperator, coerce_task, persist_or_fail
from airflow_provider_runway.transfer.downloads import RunwayDownloadError

from .test_storage import IMAGE, IMAGE_URL, VIDEO, VIDEO_URL, fake_hook, make_task, read_stored, serve, stored_url


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def dest() -> Iterator[str]:
    root = f"op-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def test_templated_fields_and_defaults() -> None:
    op = RunwayDownloadOperator(task_id="store", task={"task_id": "x"}, destination="file:///tmp/x/")
    assert {"task", "destination", "runway_conn_id"} <= set(op.template_fields)
    assert op.multiple_outputs is True
    assert op.include_thumbnail is True
    assert op.max_bytes is None
    assert op.runway_conn_id == "runway_default"


@pytest.mark.parametrize(("name", "value"), [("max_bytes", 0), ("max_bytes", -5), ("chunk_size", 0)])
def test_invalid_limits_fail_at_construction(name: str, value: int) -> None:
    kwargs: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match=name):
        RunwayDownloadOperator(task_id="store", task={}, destination="file:///tmp/x/", **kwargs)


class TestCoerceTask:
    def test_mapping_is_copied(self) -> None:
        original = make_task()
        coerced = coerce_task(original)
        assert coerced == original and coerced is not original

    def test_runway_task(self) -> None:
        assert coerce_task(RunwayTask.from_dict(make_task()))["task_id"] == "task-0123abcd"

    def test_json_string(self) -> None:
        assert coerce_task(json.dumps(make_task()))["video_url"] == VIDEO_URL

    def test_python_literal_string_from_jinja(self) -> None:
        # What "{{ ti.xcom_pull(...) }}" renders to without render_template_as_native_obj.
        assert coerce_task(str(make_task()))["video_url"] == VIDEO_URL

    @pytest.mark.parametrize("value", ["not a dict", "[1, 2]", 42, None, "__import__('os')"])
    def test_anything_else_fails(self, value: Any) -> None:
        with pytest.raises(AirflowFailException, match="task"):
            coerce_task(value)


def test_execute_stores_files_and_returns_paths(mocked: responses.RequestsMock, dest: str) -> None:
    serve(mocked)
    serve(mocked, IMAGE_URL, IMAGE, content_type="image/png")
    op = RunwayDownloadOperator(task_id="store", task=make_task(), destination=dest)
    result = op.execute(context={})  # type: ignore[arg-type]
    assert result == {
        "task_id": "task-0123abcd",
        "video_path": stored_url(dest, "task-0123abcd.mp4"),
        "video_size": len(VIDEO),
        "thumbnail_path": stored_url(dest, "task-0123abcd.png"),
        "thumbnail_size": len(IMAGE),
    }
    assert read_stored(result["video_path"]) == VIDEO


def test_execute_without_thumbnail(mocked: responses.RequestsMock, dest: str) -> None:
    serve(mocked)
    op = RunwayDownloadOperator(task_id="store", task=make_task(), destination=dest, include_thumbnail=False)
    result = op.execute(context={})  # type: ignore[arg-type]
    assert result.get("thumbnail_path") is None  # left out on Airflow 3.0, which cannot store a None XCom
    assert not any(call.request.url == IMAGE_URL for call in mocked.calls)


def test_expired_result_is_a_final_failure(mocked: responses.RequestsMock, dest: str) -> None:
    with pytest.raises(AirflowFailException, match="expired"):
        persist_or_fail(make_task(expired=True), dest, hook=fake_hook())


@pytest.mark.parametrize(
    ("task", "status", "content_type"),
    [(make_task(task_id=".."), 200, "video/mp4"), (make_task(), 200, "text/html"), (make_task(), 401, "text/html")],
)
def test_permanent_download_errors_are_final(
    mocked: responses.RequestsMock, dest: str, task: dict[str, Any], status: int, content_type: str
) -> None:
    serve(mocked, status=status, content_type=content_type)
    with pytest.raises(AirflowFailException):
        persist_or_fail(task, dest, hook=fake_hook())


def test_transient_download_errors_stay_retryable(mocked: responses.RequestsMock, dest: str) -> None:
    serve(mocked, status=503, body=b"busy", content_type="text/plain")
    with pytest.raises(RunwayDownloadError) as err:
        persist_or_fail(make_task(), dest, hook=fake_hook())
    assert err.value.retryable
    assert not isinstance(err.value, AirflowFailException)
