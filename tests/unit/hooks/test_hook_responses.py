"""Values the API sends back are checked as inputs are: task ids, URLs, and the id asked about is kept."""

from __future__ import annotations

import pytest
import responses

from airflow_provider_runway.core.errors import RunwayCreateUncertainError, RunwayParameterError, RunwayProtocolError
from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.core.results import TaskStatus
from tests.unit.hooks.conftest import BASE

GENERATE = f"{BASE}/api/v1/runway/generate"
DETAIL = f"{BASE}/api/v1/runway/record-detail"
ALEPH_INFO = f"{BASE}/api/v1/aleph/record-info"
DOWNLOAD = f"{BASE}/api/v1/common/download-url"


def ok(data: object) -> dict:
    return {"code": 200, "msg": "success", "data": data}


def runway_record(**changes: object) -> dict:
    record: dict = {
        "taskId": "t-1",
        "state": "success",
        "videoInfo": {"videoId": "v-1", "videoUrl": "https://cdn.test/v.mp4", "imageUrl": "https://cdn.test/i.png"},
    }
    record.update(changes)
    return record


@pytest.mark.parametrize("body_id", ["t-2", "../../etc/passwd", "has space", ""])
@responses.activate
def test_the_requested_task_id_is_kept_whatever_the_body_says(hook, body_id: str) -> None:
    info = {"taskId": body_id, "videoUrl": "https://cdn.test/v.mp4"}
    responses.get(DETAIL, json=ok(runway_record(taskId=body_id, videoInfo=info)))
    response = {"taskId": body_id, "resultVideoUrl": "https://cdn.test/a.mp4"}
    responses.get(ALEPH_INFO, json=ok({"taskId": body_id, "successFlag": 1, "response": response}))
    assert hook.get_task("t-1").task_id == "t-1"
    assert hook.get_task("t-1", "aleph").task_id == "t-1"


@pytest.mark.parametrize("bad_id", ["has space", "line\nbreak", "tab\tid", "nul\x00id", "del\x7fid", "x" * 129])
@responses.activate
def test_an_invalid_created_task_id_is_an_uncertain_create_not_a_task(hook, bad_id: str) -> None:
    responses.post(GENERATE, json=ok({"taskId": bad_id}))
    with pytest.raises(RunwayCreateUncertainError, match="invalid taskId") as err:
        hook.create_task(GenerateRequest(prompt="a fox", duration=5, quality="720p", aspect_ratio="16:9"))
    assert "\n" not in str(err.value).replace("\\n", "")  # the id is shown escaped, never raw
    assert len(responses.calls) == 1  # a task may exist: never created twice


@pytest.mark.parametrize(
    "video_url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "//cdn.test/v.mp4",
        "https://cdn.test/v .mp4",
        "ftp://cdn.test/v.mp4",
    ],
)
@responses.activate
def test_a_success_without_a_usable_video_url_is_a_failure(hook, video_url: str) -> None:
    responses.get(
        DETAIL, json=ok(runway_record(videoInfo={"videoUrl": video_url, "imageUrl": "https://cdn.test/i.png"}))
    )
    task = hook.get_task("t-1")
    assert task.status is TaskStatus.FAILED
    assert task.fail_code == "invalid_video_url"
    assert task.video_url is None


@pytest.mark.parametrize("image_url", ["data:image/png;base64,AAAA", "javascript:x", "http://", "https://h/\x00.png"])
@responses.activate
def test_an_unusable_thumbnail_url_is_dropped(hook, image_url: str) -> None:
    info = {"videoUrl": "https://cdn.test/v.mp4", "imageUrl": image_url}
    responses.get(DETAIL, json=ok(runway_record(videoInfo=info)))
    task = hook.get_task("t-1")
    assert task.status is TaskStatus.SUCCEEDED
    assert (task.video_url, task.image_url) == ("https://cdn.test/v.mp4", None)


@pytest.mark.parametrize("answer", ["file:///etc/passwd", "javascript:alert(1)", "ftp://dl.test/v.mp4?token=SECRET-1"])
@responses.activate
def test_a_download_link_that_is_not_http_is_a_protocol_error(hook, answer: str) -> None:
    responses.post(DOWNLOAD, json=ok(answer))
    with pytest.raises(RunwayProtocolError, match=r"no http\(s\) URL") as err:
        hook.get_download_url("https://cdn.test/v.mp4")
    assert "SECRET-1" not in str(err.value)


def test_a_refused_download_url_argument_is_named_without_its_query(hook) -> None:
    with pytest.raises(RunwayParameterError, match="url") as err:
        hook.get_download_url("ftp://cdn.test/v.mp4?token=SECRET-2")
    assert "SECRET-2" not in str(err.value)
    assert "cdn.test/v.mp4" in str(err.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, frozenset()),
        ({"download_allowed_hosts": ["Files.Corp.Test.", " minio "]}, frozenset({"files.corp.test", "minio"})),
        ({"download_allowed_hosts": "a.test, b.test"}, frozenset({"a.test", "b.test"})),
    ],
)
def test_download_allowed_hosts_from_the_extra(monkeypatch, extra: dict, expected: frozenset) -> None:
    from airflow_provider_runway.hooks.runway import RunwayHook
    from tests.unit.hooks.conftest import API_KEY, set_connection

    set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": API_KEY, "extra": extra})
    assert RunwayHook().get_download_allowed_hosts() == expected


def test_download_allowed_hosts_must_be_host_names(monkeypatch) -> None:
    from airflow_provider_runway.hooks.runway import RunwayHook
    from tests.unit.hooks.conftest import API_KEY, set_connection

    extra = {"download_allowed_hosts": {"host": 1}}
    set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": API_KEY, "extra": extra})
    with pytest.raises(ValueError, match="download_allowed_hosts"):
        RunwayHook().get_download_allowed_hosts()
