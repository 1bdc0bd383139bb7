"""KIE's File Upload API on the simulator: the three endpoints, errors, limits, expiry and serving."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from airflow_provider_runway.core import wire
from airflow_provider_runway.simulator import SimulatorThread
from airflow_provider_runway.simulator.media import png_bytes
from tests.integration.simulator.sim_helpers import KEY, Api

STREAM = "/api/file-stream-upload"
URL_UPLOAD = "/api/file-url-upload"
BASE64 = "/api/file-base64-upload"
STYLES = pytest.mark.parametrize("runway_sim", ["body", "http"], indirect=True)


def stream_upload(
    api: Api, content: bytes, upload_path: str | None = "images/user-uploads", **form: str
) -> requests.Response:
    data = dict(form)
    if upload_path is not None:
        data["uploadPath"] = upload_path
    return api.session.post(
        api.url + STREAM, files={"file": ("photo.png", content, "image/png")}, data=data, timeout=10
    )


def upload_error(response: requests.Response, code: int, style: str) -> dict[str, Any]:
    assert response.status_code == (code if style == "http" else 200)
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["msg"] and body["data"] is None
    return dict(body)


def uploaded(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["code"] == 200 and body["msg"] == "File uploaded successfully"
    return dict(body["data"])


def test_stream_upload_is_served_at_its_download_url(runway_sim: SimulatorThread, api: Api):
    content = png_bytes() + os.urandom(5000)
    data = uploaded(stream_upload(api, content, fileName="cat.png"))
    assert data["fileName"] == "cat.png" and data["filePath"] == "images/user-uploads/cat.png"
    assert data["fileSize"] == len(content) and data["mimeType"] == "image/png"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["uploadedAt"])
    assert data["downloadUrl"].startswith(runway_sim.url + "/tempfile/")
    assert data["downloadUrl"].endswith("/images/user-uploads/cat.png")
    assert KEY not in data["downloadUrl"]
    served = requests.get(data["downloadUrl"], timeout=10)  # no key needed, like KIE's temp files
    assert served.status_code == 200 and served.content == content
    assert served.headers["Content-Type"] == "image/png"
    part = requests.get(data["downloadUrl"], headers={"Range": "bytes=0-9"}, timeout=10)
    assert part.status_code == 206 and part.content == content[:10]
    counters = runway_sim.counters()
    assert counters["uploads"] == {"file-stream-upload": 1} and counters["uploads_total"] == 1
    assert counters["upload_bytes"] == len(content) and counters["requests"]["tempfile"] == 2
    assert counters["tasks_total"] == 0


def test_same_file_name_overwrites_and_no_name_gets_a_random_one(api: Api):
    first = uploaded(stream_upload(api, b"first", fileName="a.png"))
    second = uploaded(stream_upload(api, b"second!", fileName="a.png"))
    assert first["downloadUrl"] == second["downloadUrl"]
    assert requests.get(second["downloadUrl"], timeout=10).content == b"second!"
    one, two = uploaded(stream_upload(api, b"x")), uploaded(stream_upload(api, b"x"))
    assert one["fileName"] != two["fileName"] and one["fileName"].endswith(".png")
    other_key = Api(api.url, key="another-key")
    theirs = uploaded(stream_upload(other_key, b"theirs", fileName="a.png"))
    assert theirs["downloadUrl"] != second["downloadUrl"]
    assert requests.get(second["downloadUrl"], timeout=10).content == b"second!"


def test_base64_upload_plain_and_data_url(api: Api):
    content = png_bytes()
    plain = uploaded(
        api.post(BASE64, {"base64Data": base64.b64encode(content).decode(), "uploadPath": "b64", "fileName": "p.png"})
    )
    assert plain["fileSize"] == len(content) and plain["mimeType"] == "image/png"
    as_data_url = "data:image/jpeg;base64," + base64.b64encode(b"jpeg bytes").decode()
    data_url = uploaded(api.post(BASE64, {"base64Data": as_data_url, "uploadPath": "b64"}))
    assert data_url["fileName"].endswith(".jpg") and data_url["mimeType"] == "image/jpeg"
    assert requests.get(data_url["downloadUrl"], timeout=10).content == b"jpeg bytes"


@pytest.mark.runway_sim(allow_internal_fetch=True)  # fileUrl is the simulator's own loopback URL
def test_url_upload_fetches_the_file(runway_sim: SimulatorThread, api: Api):
    task_id = api.generate()
    video_url = api.wait_runway(task_id)["videoInfo"]["videoUrl"]
    data = uploaded(api.post(URL_UPLOAD, {"fileUrl": video_url, "uploadPath": "videos", "fileName": "in.mp4"}))
    assert data["mimeType"] == "video/mp4" and data["filePath"] == "videos/in.mp4"
    assert requests.get(data["downloadUrl"], timeout=10).content == requests.get(video_url, timeout=10).content
    assert runway_sim.counters()["uploads"] == {"file-url-upload": 1}


@pytest.mark.runway_sim(allow_internal_fetch=True)  # fileUrl is the simulator's own loopback URL
@STYLES
def test_upload_errors_as_kie_sends_them(runway_sim: SimulatorThread, api: Api, runway_sim_factory):
    style = runway_sim.config()["error_style"]
    anonymous = requests.post(
        runway_sim.url + STREAM, files={"file": ("a.png", b"x")}, data={"uploadPath": "a"}, timeout=10
    )
    assert "API key" in upload_error(anonymous, 401, style)["msg"]
    restricted = runway_sim_factory(api_keys=("only-this",), error_style=style)
    assert upload_error(stream_upload(Api(restricted.url, key="wrong"), b"x"), 401, style)
    assert "uploadPath is required" in upload_error(stream_upload(api, b"x", upload_path=None), 400, style)["msg"]
    assert "uploadPath" in upload_error(stream_upload(api, b"x", upload_path="/images/"), 400, style)["msg"]
    assert "uploadPath" in upload_error(stream_upload(api, b"x", upload_path="a/../b"), 400, style)["msg"]
    assert "fileName" in upload_error(stream_upload(api, b"x", fileName="../x.png"), 400, style)["msg"]
    no_file = api.session.post(api.url + STREAM, files={"uploadPath": (None, "a")}, timeout=10)
    assert "file is required" in upload_error(no_file, 400, style)["msg"]
    as_json = api.post(STREAM, {"uploadPath": "a"})
    assert "multipart/form-data" in upload_error(as_json, 400, style)["msg"]
    assert "file is empty" in upload_error(stream_upload(api, b""), 400, style)["msg"]
    bad_b64 = api.post(BASE64, {"base64Data": "***", "uploadPath": "a"})
    assert "base64Data" in upload_error(bad_b64, 400, style)["msg"]
    assert "base64Data is required" in upload_error(api.post(BASE64, {"uploadPath": "a"}), 400, style)["msg"]
    assert (
        "fileUrl" in upload_error(api.post(URL_UPLOAD, {"fileUrl": "ftp://x/y", "uploadPath": "a"}), 400, style)["msg"]
    )
    gone = api.post(URL_UPLOAD, {"fileUrl": runway_sim.url + "/files/nothing.mp4", "uploadPath": "a"})
    assert "HTTP 404" in upload_error(gone, 400, style)["msg"]
    unreachable = api.post(URL_UPLOAD, {"fileUrl": "https://media.invalid/a.png", "uploadPath": "a"})
    assert "Failed to download" in upload_error(unreachable, 400, style)["msg"]
    counters = runway_sim.counters()
    assert counters["uploads_total"] == 0 and counters["upload_bytes"] == 0


@pytest.mark.runway_sim(allow_internal_fetch=True)  # fileUrl is the simulator's own loopback URL
def test_size_limits_name_the_field_the_size_and_the_limit(runway_sim: SimulatorThread, api: Api, tmp_path: Path):
    runway_sim.configure(upload_max_bytes=1000, upload_base64_max_bytes=100)
    message = upload_error(stream_upload(api, b"x" * 5000), 400, "body")["msg"]
    assert message == "file is too large: 5000 bytes, the limit is 1000 bytes"
    assert uploaded(stream_upload(api, b"x" * 1000))["fileSize"] == 1000
    big_b64 = api.post(BASE64, {"base64Data": base64.b64encode(b"y" * 101).decode(), "uploadPath": "a"})
    assert "base64Data is too large: 101 bytes, the limit is 100 bytes" in upload_error(big_b64, 400, "body")["msg"]
    task_id = api.generate()
    video_url = api.wait_runway(task_id)["videoInfo"]["videoUrl"]
    too_big = api.post(URL_UPLOAD, {"fileUrl": video_url, "uploadPath": "a"})
    assert "fileUrl is too large" in upload_error(too_big, 400, "body")["msg"]
    assert runway_sim.counters()["uploads_total"] == 1
    assert [p.name for p in runway_sim.simulator.uploads.root.glob("incoming-*")] == []  # nothing left behind


def test_uploads_expire_and_image_to_video_uses_them(runway_sim: SimulatorThread, api: Api):
    data = uploaded(stream_upload(api, png_bytes(), fileName="start.png"))
    task_id = api.generate(imageUrl=data["downloadUrl"])
    record = api.wait_runway(task_id)
    assert record["state"] == "success" and record["generateParam"]["imageUrl"] == data["downloadUrl"]
    runway_sim.configure(upload_retention_seconds=0)
    expired = requests.get(data["downloadUrl"], timeout=10)
    assert expired.status_code == 404 and "deleted after 3 days" in expired.json()["msg"]
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "imageUrl": data["downloadUrl"]})
    assert "uploaded file is gone" in refused.json()["msg"] and refused.json()["code"] == 451


def test_upload_lifetime_is_scaled_by_time_scale(runway_sim: SimulatorThread, api: Api):
    runway_sim.configure(upload_retention_seconds=3 * 86400, time_scale=0.5 / (3 * 86400))  # 3 days -> 0.5 s
    data = uploaded(stream_upload(api, b"short-lived"))
    assert requests.get(data["downloadUrl"], timeout=10).status_code == 200
    time.sleep(0.6)
    assert requests.get(data["downloadUrl"], timeout=10).status_code == 404


def test_upload_faults_and_reset(runway_sim: SimulatorThread, api: Api):
    runway_sim.inject_fault(endpoint="file-stream-upload", kind="http500")
    assert stream_upload(api, b"x").status_code == 500
    data = uploaded(stream_upload(api, b"x"))
    runway_sim.reset()
    assert requests.get(data["downloadUrl"], timeout=10).status_code == 404
    assert runway_sim.counters()["uploads_total"] == 0


async def _stream_file(url: str, path: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        with path.open("rb") as handle:
            form = aiohttp.FormData()
            form.add_field("uploadPath", "videos")
            form.add_field("fileName", "big.mp4")
            form.add_field("file", handle, filename="big.mp4", content_type="video/mp4")
            async with session.post(url + STREAM, data=form) as response:
                return dict(await response.json())


def test_a_50_mb_upload_streams_to_disk_with_flat_memory(runway_sim: SimulatorThread, tmp_path: Path):
    source = tmp_path / "big.mp4"
    digest = hashlib.sha256()
    with source.open("wb") as handle:
        for _ in range(50):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            handle.write(block)
    tracemalloc.start()
    try:
        body = asyncio.run(_stream_file(runway_sim.url, source))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"50 MB upload: peak traced memory {peak / 1e6:.2f} MB (client and simulator together)")
    assert body["success"] is True and body["data"]["fileSize"] == 50 * 1024 * 1024
    assert peak < 5 * 1024 * 1024
    served = hashlib.sha256()
    with requests.get(body["data"]["downloadUrl"], stream=True, timeout=30) as response:
        for chunk in response.iter_content(1024 * 1024):
            served.update(chunk)
    assert served.hexdigest() == digest.hexdigest()
