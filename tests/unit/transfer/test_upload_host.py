"""Where uploads go when the connection does not say: KIE's file host only for KIE's API (issue 23).

A simulator or a gateway in front of the API receives the uploads too, so an input never leaves for
KIE's public file host when the API is not KIE's. A plain-http upload host is logged as a warning,
as a plain-http ``callback_url`` is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import requests
import responses

from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.transfer.uploads import (
    DEFAULT_UPLOAD_BASE_URL,
    FILE_STREAM_UPLOAD_PATH,
    check_upload_base_url,
    upload_file,
)

from .conftest import API_KEY, UploadHost

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def _connect(monkeypatch: pytest.MonkeyPatch, host: str | None, extra: dict[str, str] | None = None) -> None:
    conn = {"conn_type": "runway", "password": API_KEY, "extra": extra or {}}
    if host is not None:
        conn["host"] = host
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize(
    ("api_host", "upload_host"),
    [
        (None, DEFAULT_UPLOAD_BASE_URL),  # no host: KIE's API
        ("https://api.kie.ai", DEFAULT_UPLOAD_BASE_URL),
        ("https://API.KIE.AI/", DEFAULT_UPLOAD_BASE_URL),
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),  # the simulator
        ("http://runway-sim:8089", "http://runway-sim:8089"),  # the compose file's simulator
        ("https://gateway.example/kie/", "https://gateway.example/kie"),
        ("https://api.kie.ai.attacker.example", "https://api.kie.ai.attacker.example"),
        ("https://notkie.ai", "https://notkie.ai"),
    ],
)
def test_the_default_upload_host_follows_the_api_host(
    monkeypatch: pytest.MonkeyPatch, api_host: str | None, upload_host: str
) -> None:
    _connect(monkeypatch, api_host)
    assert RunwayHook().upload_base_url == upload_host


def test_the_extra_wins_whatever_the_api_host(monkeypatch: pytest.MonkeyPatch) -> None:
    _connect(monkeypatch, "http://127.0.0.1:8089", {"upload_base_url": "https://uploads.example/"})
    assert RunwayHook().upload_base_url == "https://uploads.example"


def test_without_an_api_host_the_function_keeps_kies_default() -> None:
    assert check_upload_base_url(None) == DEFAULT_UPLOAD_BASE_URL
    assert check_upload_base_url("", api_base_url="https://api.kie.ai") == DEFAULT_UPLOAD_BASE_URL
    assert check_upload_base_url("", api_base_url="http://127.0.0.1:1/") == "http://127.0.0.1:1"


def test_a_hook_on_a_local_api_uploads_to_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, upload_host: UploadHost
) -> None:
    _connect(monkeypatch, upload_host.url)
    hook = RunwayHook(retry_limit=0)
    assert hook.upload_base_url == upload_host.url  # checked first: on failure nothing is sent anywhere
    image = tmp_path / "in.png"
    image.write_bytes(PNG)
    assert hook.upload_file(image, field="image_url").startswith(f"{upload_host.url}/files/")
    (received,) = upload_host.requests
    assert received.path == FILE_STREAM_UPLOAD_PATH


def test_a_plain_http_upload_host_is_a_warning(
    tmp_path: Path, session: requests.Session, upload_host: UploadHost, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(PNG)
    with caplog.at_level(logging.WARNING):
        upload_file(session, upload_host.url, image, logger=logging.getLogger("tests.uploads"))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "upload_base_url uses plain http (host 127.0.0.1)" in warnings[0]
    assert API_KEY not in warnings[0]


@responses.activate
def test_an_https_upload_host_is_not(
    tmp_path: Path, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    answer = {"code": 200, "msg": "ok", "data": {"downloadUrl": "https://files.example/a.png"}}
    responses.add(responses.POST, "https://uploads.example" + FILE_STREAM_UPLOAD_PATH, json=answer)
    image = tmp_path / "in.png"
    image.write_bytes(PNG)
    with caplog.at_level(logging.WARNING):
        upload_file(session, "https://uploads.example", image, logger=logging.getLogger("tests.uploads"))
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
