"""Uploads wired in: the hook's ``upload_file``, the connection extras, and the operators' file inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import responses
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_runway.core import RunwayParameterError, RunwayUnavailableError
from airflow_provider_runway.hooks.connection_form import EXTRA_FIELDS
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.runway import (
    RUNWAY_UPLOADED_INPUTS_XCOM_KEY,
    RunwayAlephOperator,
    RunwayGenerateOperator,
)
from airflow_provider_runway.transfer.uploads import (
    DEFAULT_UPLOAD_BASE_URL,
    FILE_STREAM_UPLOAD_PATH,
    MIB,
    InputSource,
    RunwayInputTooLargeError,
    UploadLimits,
    is_upload_input,
    prepare_upload,
    resolve_input,
)

from .conftest import API_KEY

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(1000)
UPLOAD_HOST = "https://uploads.example"


def set_connection(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any] | None = None, host: str = "https://api.example"
) -> None:
    conn = {"conn_type": "runway", "host": host, "password": API_KEY, "extra": extra or {}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


def answer(url: str) -> dict[str, Any]:
    return {"success": True, "code": 200, "msg": "File uploaded successfully", "data": {"downloadUrl": url}}


# ---------------------------------------------------------------------------------------------- the hook


def test_the_connection_form_describes_the_upload_extras() -> None:
    names = {item.name for item in EXTRA_FIELDS}
    assert {"upload_base_url", "upload_max_image_mb", "upload_max_video_mb"} <= names


@responses.activate
def test_hook_upload_file_posts_to_the_upload_host_with_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_connection(monkeypatch, {"upload_base_url": UPLOAD_HOST + "/"})
    responses.add(responses.POST, UPLOAD_HOST + FILE_STREAM_UPLOAD_PATH, json=answer("https://files.example/a.png"))
    (tmp_path / "a.png").write_bytes(PNG)
    assert RunwayHook().upload_file(tmp_path / "a.png", field="image_url") == "https://files.example/a.png"
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert call.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")


@responses.activate
def test_hook_upload_file_defaults_to_kies_host_for_kies_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_connection(monkeypatch, host="https://api.kie.ai")
    responses.add(responses.POST, DEFAULT_UPLOAD_BASE_URL + FILE_STREAM_UPLOAD_PATH, json=answer("https://f.example/x"))
    (tmp_path / "a.png").write_bytes(PNG)
    assert RunwayHook().upload_base_url == DEFAULT_UPLOAD_BASE_URL
    assert RunwayHook().upload_file(str(tmp_path / "a.png")) == "https://f.example/x"


@responses.activate
def test_hook_upload_retries_a_server_error_with_the_connections_retry_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_connection(monkeypatch, {"upload_base_url": UPLOAD_HOST, "retry_limit": 1})
    url = UPLOAD_HOST + FILE_STREAM_UPLOAD_PATH
    responses.add(responses.POST, url, status=500, json={"code": 500, "msg": "busy", "data": None})
    hook = RunwayHook()
    waits: list[float] = []
    hook._sleep = waits.append
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(RunwayUnavailableError):
        hook.upload_file(tmp_path / "a.png")
    assert len(responses.calls) == 2 and len(waits) == 1


@responses.activate
def test_hook_limits_come_from_the_extras(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_connection(monkeypatch, {"upload_max_image_mb": "0.0005"})
    assert RunwayHook().get_upload_limits() == UploadLimits(max_image_bytes=int(0.0005 * MIB))
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(RunwayInputTooLargeError, match="image_url"):
        RunwayHook().upload_file(tmp_path / "a.png", field="image_url")
    assert len(responses.calls) == 0


# ---------------------------------------------------------------------------------------------- the forms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("https://host/a.png", False),
        ("/data/a.png", True),
        ("~/a.png", True),
        ("./a.png", True),
        (Path("relative.png"), True),
        (ObjectStoragePath("file:///data/a.png"), True),
        ("file:///data/a.png", True),
        ("s3://bucket/a.png", True),
        ("memory://bucket/a.png", True),
    ],
)
def test_is_upload_input_tells_files_from_urls_without_reading(value: Any, expected: bool) -> None:
    assert is_upload_input(value, "image_url") is expected


@pytest.mark.parametrize("value", ["example.com/a.png", "ftp://host/a.png", "nosuch://x/a.png", 42, "sftp://h/a"])
def test_is_upload_input_refuses_other_forms_naming_the_field(value: Any) -> None:
    with pytest.raises(RunwayParameterError, match="reference_image") as raised:
        is_upload_input(value, "reference_image")
    assert "http(s) URL" in str(raised.value) or "path" in str(raised.value)


def test_a_file_that_is_not_media_is_not_uploaded_for_an_input(tmp_path: Path) -> None:
    secret = tmp_path / "passwd.png"  # the name says image, the bytes do not
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    source = resolve_input(str(secret), "image_url")
    assert isinstance(source, InputSource)
    with pytest.raises(RunwayParameterError, match=r"image_url.*must be an image"):
        prepare_upload(source, field="image_url")


# ---------------------------------------------------------------------------------------------- operators


def test_operators_accept_file_inputs_at_parse_time(tmp_path: Path) -> None:
    RunwayGenerateOperator(task_id="a", prompt="p", image_url="/nowhere/yet.png")  # the worker's file
    RunwayGenerateOperator(task_id="b", prompt="p", image_url=ObjectStoragePath("s3://bucket/in.png"))
    RunwayAlephOperator(task_id="c", prompt="p", video_url="gs://bucket/in.mp4", reference_image="file:///r.png")
    with pytest.raises(RunwayParameterError, match="image_url"):
        RunwayGenerateOperator(task_id="d", prompt="p", image_url="cat.png")
    with pytest.raises(RunwayParameterError, match="video_url"):
        RunwayAlephOperator(task_id="e", prompt="p", video_url="ftp://host/in.mp4")


def _hook(limits: UploadLimits | None = None) -> mock.MagicMock:
    from airflow_provider_runway.core import ValidationLimits

    hook = mock.MagicMock(spec=RunwayHook)
    hook.get_validation_limits.return_value = ValidationLimits()
    hook.get_upload_limits.return_value = limits or UploadLimits()
    hook.upload_file.side_effect = lambda source, field: f"https://files.example/{field}/{source.name}"
    hook.create_task.return_value = "task-1"
    return hook


def test_the_operator_uploads_every_file_then_creates_with_the_download_urls(tmp_path: Path) -> None:
    (tmp_path / "in.mp4").write_bytes(MP4)
    (tmp_path / "ref.png").write_bytes(PNG)
    op = RunwayAlephOperator(
        task_id="aleph",
        prompt="night",
        video_url=str(tmp_path / "in.mp4"),
        reference_image=f"file://{tmp_path}/ref.png",
    )
    op.hook = hook = _hook()
    op._try.request = op.build_request(hook.get_validation_limits())
    hook.upload_file.assert_not_called()  # resolving checks the files, uploading waits for the create
    ti = mock.MagicMock()
    assert op.submit_job({"ti": ti}) == "task-1"
    (request,) = hook.create_task.call_args.args
    assert request.video_url == "https://files.example/video_url/in.mp4"
    assert request.reference_image == "https://files.example/reference_image/ref.png"
    ti.xcom_push.assert_called_once_with(
        key=RUNWAY_UPLOADED_INPUTS_XCOM_KEY,
        value={"video_url": request.video_url, "reference_image": request.reference_image},
    )


def test_an_oversized_second_input_stops_everything_before_any_upload(tmp_path: Path) -> None:
    (tmp_path / "in.mp4").write_bytes(MP4)
    (tmp_path / "ref.png").write_bytes(PNG)
    op = RunwayAlephOperator(
        task_id="aleph", prompt="night", video_url=str(tmp_path / "in.mp4"), reference_image=str(tmp_path / "ref.png")
    )
    op.hook = hook = _hook(UploadLimits(max_image_bytes=100))
    with pytest.raises(AirflowFailException, match=r"reference_image.*100 bytes.*no Runway task was created"):
        op.build_request(hook.get_validation_limits())
    hook.upload_file.assert_not_called()
    hook.create_task.assert_not_called()


def test_a_missing_file_fails_the_task_naming_the_field(tmp_path: Path) -> None:
    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url=str(tmp_path / "gone.png"))
    op.hook = _hook()
    with pytest.raises(AirflowFailException, match=r"image_url.*no such file"):
        op.build_request(op.hook.get_validation_limits())


def test_a_refused_upload_fails_without_retries_and_creates_nothing(tmp_path: Path) -> None:
    from airflow_provider_runway.core import RunwayAuthError

    (tmp_path / "in.png").write_bytes(PNG)
    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url=str(tmp_path / "in.png"))
    op.hook = hook = _hook()
    hook.upload_file.side_effect = RunwayAuthError("You do not have access permissions", code=401)
    op._try.request = op.build_request(hook.get_validation_limits())
    with pytest.raises(AirflowFailException, match="uploading image_url failed"):
        op.submit_job({"ti": mock.MagicMock()})
    hook.create_task.assert_not_called()


def test_a_transient_upload_failure_is_left_to_airflow_retries(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(PNG)
    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url=str(tmp_path / "in.png"))
    op.hook = hook = _hook()
    hook.upload_file.side_effect = RunwayUnavailableError("busy", code=500)
    op._try.request = op.build_request(hook.get_validation_limits())
    with pytest.raises(RunwayUnavailableError):
        op.submit_job({"ti": mock.MagicMock()})
    hook.create_task.assert_not_called()


def test_an_input_that_is_not_media_stops_everything_before_any_upload(tmp_path: Path) -> None:
    (tmp_path / "in.mp4").write_bytes(MP4)
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    op = RunwayAlephOperator(
        task_id="aleph", prompt="night", video_url=str(tmp_path / "in.mp4"), reference_image=str(tmp_path / "notes.png")
    )
    op.hook = hook = _hook()
    with pytest.raises(AirflowFailException, match=r"reference_image.*must be an image"):
        op.build_request(hook.get_validation_limits())
    hook.upload_file.assert_not_called()
    hook.create_task.assert_not_called()


def test_a_video_given_as_an_image_is_refused_before_any_upload(tmp_path: Path) -> None:
    (tmp_path / "clip.png").write_bytes(MP4)
    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url=str(tmp_path / "clip.png"))
    op.hook = hook = _hook()
    with pytest.raises(AirflowFailException, match=r"image_url.*must be an image; the file is video/mp4"):
        op.build_request(hook.get_validation_limits())
    hook.upload_file.assert_not_called()
