"""persist_task_result against the bundled simulator over real loopback HTTP (no mocks)."""

from __future__ import annotations

import logging
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import pytest
import requests
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway.core.errors import RunwayResultExpiredError
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.transfer.downloads import RunwayDownloadError, persist_task_result

from .conftest import file_requests

pytestmark = pytest.mark.integration

Finished = Callable[..., dict[str, Any]]


def is_mp4(data: bytes) -> bool:
    size, box = struct.unpack(">I4s", data[:8])
    return box == b"ftyp" and 8 <= size <= len(data)


@pytest.fixture
def memory_dest() -> Iterator[str]:
    root = f"runway-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}/videos/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


@pytest.mark.parametrize("family", ["runway", "aleph"])
def test_persist_to_local_files(finished: Finished, sim_hook: RunwayHook, tmp_path: Path, family: str) -> None:
    task = finished(family)
    assert task["state"] == "succeeded"
    dest = f"file://{tmp_path}/{family}/"
    result = persist_task_result(task, dest, hook=sim_hook)
    video = tmp_path / family / f"{task['task_id']}.mp4"
    thumb = tmp_path / family / f"{task['task_id']}.png"
    assert result == {
        "video_path": f"file://{video}",
        "video_size": video.stat().st_size,
        "thumbnail_path": f"file://{thumb}",
        "thumbnail_size": thumb.stat().st_size,
    }
    assert is_mp4(video.read_bytes())
    assert thumb.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in video.parent.iterdir()) == sorted([video.name, thumb.name])


def test_persist_to_memory_store(finished: Finished, sim_hook: RunwayHook, memory_dest: str) -> None:
    task = finished()
    folder = ObjectStoragePath(memory_dest)
    result = persist_task_result(task, folder, hook=sim_hook)
    # Read through fsspec: Airflow before 3.2 has no memory:// filesystem of its own, and older
    # universal_pathlib spells the URL memory:///.
    assert result["video_path"] == str(folder / f"{task['task_id']}.mp4")
    fs = fsspec.filesystem("memory")
    data = fs.cat_file(fsspec.core.url_to_fs(result["video_path"])[1])
    assert len(data) == result["video_size"] and is_mp4(data)
    assert requests.get(task["video_url"], timeout=10).content == data
    assert fs.cat_file(fsspec.core.url_to_fs(result["thumbnail_path"])[1]).startswith(b"\x89PNG")
    assert sorted(fs.ls(f"/{memory_dest.split('/')[2]}/videos", detail=False)) == sorted(
        fsspec.core.url_to_fs(result[key])[1] for key in ("video_path", "thumbnail_path")
    )  # no temporary object left behind


def test_rerun_skips_files_already_stored(
    finished: Finished, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = finished()
    first = persist_task_result(task, str(tmp_path), hook=sim_hook)
    video = Path(first["video_path"].removeprefix("file://"))
    before = (video.stat().st_mtime_ns, video.read_bytes())
    methods: list[str] = []
    original = requests.Session.request

    def recording(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        methods.append(method.upper())
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    served_before = file_requests(runway_sim)
    second = persist_task_result(task, str(tmp_path), hook=sim_hook)
    assert second == first
    # One HEAD per file, no GET: the simulator saw two file requests and the file was not rewritten.
    assert methods == ["HEAD", "HEAD"]
    assert file_requests(runway_sim) - served_before == 2
    assert (video.stat().st_mtime_ns, video.read_bytes()) == before


def test_truncated_earlier_copy_is_replaced(finished: Finished, sim_hook: RunwayHook, tmp_path: Path) -> None:
    task = finished()
    partial = tmp_path / f"{task['task_id']}.mp4"
    partial.write_bytes(b"\x00" * 100)
    result = persist_task_result(task, str(tmp_path), hook=sim_hook, include_thumbnail=False)
    assert partial.stat().st_size == result["video_size"] > 100
    assert is_mp4(partial.read_bytes())


@pytest.mark.parametrize("evil", ["../../escape", "/etc/cron.d/x", "..\\..\\win", "a/../../b"])
def test_traversal_ids_stay_inside_the_destination(
    finished: Finished, sim_hook: RunwayHook, tmp_path: Path, evil: str
) -> None:
    task = {**finished(), "task_id": evil}
    dest = tmp_path / "inbox" / "deep"
    result = persist_task_result(task, f"file://{dest}/", hook=sim_hook)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert [p.parent for p in files] == [dest, dest]
    assert {p.suffix for p in files} == {".mp4", ".png"}
    assert all(".." not in p.name and not p.name.startswith(".") for p in files)
    assert result["video_path"] == f"file://{dest}/{files[0].name}"


@pytest.mark.parametrize("evil", ["..", ".", "", "/", "../"])
def test_unusable_ids_are_refused_before_any_download(
    finished: Finished, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path, evil: str
) -> None:
    task = {**finished(), "task_id": evil}
    served = file_requests(runway_sim)
    with pytest.raises(RunwayDownloadError):
        persist_task_result(task, str(tmp_path / "out"), hook=sim_hook)
    assert file_requests(runway_sim) == served
    assert not (tmp_path / "out").exists()


def test_oversized_file_is_refused(
    runway_sim_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from .conftest import connect, finish_task

    sim = runway_sim_factory(video_size_bytes=3 * 1024 * 1024)
    hook = connect(monkeypatch, sim.url)
    task = finish_task(hook)
    with pytest.raises(RunwayDownloadError, match="exceed the cap") as err:
        persist_task_result(task, str(tmp_path), hook=hook, max_bytes=1024 * 1024)
    assert not err.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_old_task_downloads_through_a_fresh_link(
    finished: Finished, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path
) -> None:
    task = finished()
    task["created_at"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    task["completed_at"] = None
    before = runway_sim.counters()["requests"].get("download-url", 0)
    result = persist_task_result(task, str(tmp_path), hook=sim_hook)
    assert runway_sim.counters()["requests"]["download-url"] - before == 2  # video and thumbnail
    assert result["video_size"] > 0 and result["thumbnail_size"] > 0


def test_rejected_link_is_refreshed(
    finished: Finished, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = finished()
    task["video_url"] += "?token=0000&expires=1"  # a link the file host refuses (403)
    with caplog.at_level(logging.DEBUG):
        result = persist_task_result(task, str(tmp_path), hook=sim_hook, include_thumbnail=False)
    assert runway_sim.counters()["requests"]["download-url"] == 1
    assert is_mp4(Path(result["video_path"].removeprefix("file://")).read_bytes())
    storage_lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_runway.transfer.downloads"]
    assert any("fresh download link" in line for line in storage_lines)
    assert not any("token=" in line for line in storage_lines)  # signed links stay out of the logs


def test_expired_result_fails_clearly(
    runway_sim_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from .conftest import connect, finish_task

    sim = runway_sim_factory(retention_seconds=0.3)
    hook = connect(monkeypatch, sim.url)
    task = finish_task(hook)
    deadline = time.monotonic() + 10
    while not hook.get_task(task["task_id"]).expired and time.monotonic() < deadline:
        time.sleep(0.05)
    expired = hook.get_task(task["task_id"]).to_dict()
    assert expired["expired"]
    with pytest.raises(RunwayResultExpiredError, match="14 days"):
        persist_task_result(expired, str(tmp_path), hook=hook)
    # A task dict saved before expiry: the file host says 410, a fresh link is refused too.
    with pytest.raises(RunwayResultExpiredError, match="14 days"):
        persist_task_result(task, str(tmp_path), hook=hook)
    assert list(tmp_path.iterdir()) == []


def test_api_key_never_reaches_the_file_host(
    finished: Finished, sim_hook: RunwayHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY

    task = finished()
    task["created_at"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()  # forces download-url
    task["completed_at"] = None
    seen: list[tuple[str, dict[str, str]]] = []
    original = requests.Session.send

    def recording(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        seen.append((request.url or "", dict(request.headers)))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    persist_task_result(task, str(tmp_path), hook=sim_hook)
    file_calls = [headers for url, headers in seen if "/files/" in url]
    api_calls = [headers for url, headers in seen if "/api/v1/" in url]
    assert len(file_calls) == 2 and len(api_calls) == 2
    for headers in file_calls:
        assert "Authorization" not in headers
        assert TEST_API_KEY not in repr(headers)
    assert all(TEST_API_KEY in h.get("Authorization", "") for h in api_calls)
