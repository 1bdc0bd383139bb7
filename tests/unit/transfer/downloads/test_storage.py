"""persist_task_result with mocked HTTP (``responses``): naming, checks, link refresh, skips, cleanup."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import pytest
import responses
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway.core.errors import RunwayResultExpiredError
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.transfer.downloads import (
    RunwayDownloadError,
    link_is_stale,
    persist_task_result,
    redact_url,
    resolve_destination,
)

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
IMAGE = b"\x89PNG\r\n\x1a\n" + b"\x01" * 500
VIDEO_URL = "https://files.test/r/abc.mp4"
IMAGE_URL = "https://files.test/r/abc.png"
FRESH_VIDEO_URL = "https://cdn.test/abc.mp4?token=secret-token&expires=1"
API_KEY = "kie-api-key-never-sent-to-file-hosts"


class FakeHook:
    """Stands in for RunwayHook: only get_download_url is used by storage."""

    def __init__(self, links: dict[str, str] | None = None) -> None:
        self.links = links or {}
        self.calls: list[str] = []
        self.password = API_KEY

    def get_download_url(self, url: str) -> str:
        self.calls.append(url)
        return self.links.get(url, url)


def fake_hook(links: dict[str, str] | None = None) -> Any:
    return FakeHook(links)


def make_task(**changes: Any) -> dict[str, Any]:
    task = RunwayTask(
        task_id="task-0123abcd",
        family=TaskFamily.RUNWAY,
        status=TaskStatus.SUCCEEDED,
        raw_state="success",
        video_url=VIDEO_URL,
        image_url=IMAGE_URL,
        created_at=datetime.now(timezone.utc) - timedelta(minutes=2),
    ).to_dict()
    task.update(changes)
    return task


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def memory_dest() -> Any:
    bucket = f"memory://bucket-{uuid.uuid4().hex[:8]}/videos/"
    yield bucket
    fs = fsspec.filesystem("memory")
    root = bucket.replace("memory://", "/").split("/videos")[0]
    if fs.exists(root):
        fs.rm(root, recursive=True)


def serve(rsps: responses.RequestsMock, url: str = VIDEO_URL, body: bytes = VIDEO, **kwargs: Any) -> None:
    kwargs.setdefault("content_type", "video/mp4")
    headers = kwargs.pop("headers", {"Content-Length": str(len(body))})
    rsps.add(responses.GET, url, body=body, headers=headers, **kwargs)


def read_stored(url: str) -> bytes:
    """A stored file's bytes through fsspec (Airflow before 3.2 has no memory:// filesystem of its own)."""
    with fsspec.open(url, "rb") as stored:
        return bytes(stored.read())


def stored_url(folder: str, name: str) -> str:
    """How ``persist_task_result`` names ``folder/name`` (older universal_pathlib writes memory:///)."""
    return str(resolve_destination(folder) / name)


def gets(rsps: responses.RequestsMock, url: str) -> int:
    return sum(1 for call in rsps.calls if call.request.method == "GET" and call.request.url == url)


def test_redact_url_drops_tokens_and_credentials() -> None:
    assert redact_url("https://user:pw@cdn.test/a.mp4?token=s3cret#frag") == "https://cdn.test/a.mp4"


def test_link_is_stale_uses_completion_or_creation_time() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert not link_is_stale({"created_at": (now - timedelta(minutes=19)).isoformat()}, now.timestamp())
    assert link_is_stale({"created_at": (now - timedelta(minutes=21)).isoformat()}, now.timestamp())
    recent = (now - timedelta(minutes=1)).isoformat()
    old = (now - timedelta(hours=1)).isoformat()
    assert not link_is_stale({"created_at": old, "completed_at": recent}, now.timestamp())
    assert not link_is_stale({}, now.timestamp())


def test_resolve_destination_forms() -> None:
    assert str(resolve_destination("/data/videos/")).startswith("file:///data/videos")
    path = ObjectStoragePath("memory://b/p/")
    assert resolve_destination(path) is path
    with pytest.raises(RunwayDownloadError, match="absolute"):
        resolve_destination("relative/dir")
    with pytest.raises(RunwayDownloadError):
        resolve_destination("")


def test_persist_to_memory_store_video_and_thumbnail(mocked: responses.RequestsMock, memory_dest: str) -> None:
    serve(mocked)
    serve(mocked, IMAGE_URL, IMAGE, content_type="image/png")
    result = persist_task_result(make_task(), memory_dest, hook=fake_hook())
    assert result == {
        "video_path": stored_url(memory_dest, "task-0123abcd.mp4"),
        "video_size": len(VIDEO),
        "thumbnail_path": stored_url(memory_dest, "task-0123abcd.png"),
        "thumbnail_size": len(IMAGE),
    }
    assert read_stored(result["video_path"]) == VIDEO
    assert read_stored(result["thumbnail_path"]) == IMAGE
    for call in mocked.calls:
        sent = {k.lower(): v for k, v in call.request.headers.items()}
        assert "authorization" not in sent
        assert API_KEY not in str(sent)
        assert sent["user-agent"].startswith("airflow-provider-runway/")


def test_persist_to_local_directory_renames_into_place(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked)
    result = persist_task_result(make_task(), f"file://{tmp_path}/out/", hook=fake_hook(), include_thumbnail=False)
    assert (tmp_path / "out" / "task-0123abcd.mp4").read_bytes() == VIDEO
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["task-0123abcd.mp4"]
    assert result["thumbnail_path"] is None and result["thumbnail_size"] is None
    assert gets(mocked, IMAGE_URL) == 0


def test_traversal_task_id_writes_inside_the_destination(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked)
    dest = tmp_path / "a" / "b"
    task = make_task(task_id="../../../escaped")
    result = persist_task_result(task, str(dest), hook=fake_hook(), include_thumbnail=False)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 1
    assert written[0].parent == dest
    assert written[0].name.startswith("escaped-") and written[0].suffix == ".mp4"
    assert result["video_path"].endswith(written[0].name)


@pytest.mark.parametrize("task_id", ["..", ".", "", "/"])
def test_degenerate_task_id_is_refused_before_any_request(
    mocked: responses.RequestsMock, tmp_path: Path, task_id: str
) -> None:
    with pytest.raises(RunwayDownloadError):
        persist_task_result(make_task(task_id=task_id), str(tmp_path), hook=fake_hook())
    assert len(mocked.calls) == 0
    assert list(tmp_path.iterdir()) == []


def test_expired_result_fails_clearly_without_requests(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    with pytest.raises(RunwayResultExpiredError, match=r"expired.*14 days"):
        persist_task_result(make_task(expired=True), str(tmp_path), hook=fake_hook())
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("state", ["failed", "running", "pending"])
def test_unfinished_or_failed_task_is_refused(mocked: responses.RequestsMock, tmp_path: Path, state: str) -> None:
    with pytest.raises(RunwayDownloadError, match="has not succeeded"):
        persist_task_result(make_task(state=state), str(tmp_path), hook=fake_hook())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://files.test/a.mp4", "//files.test/a.mp4", "", None])
def test_only_http_sources(mocked: responses.RequestsMock, tmp_path: Path, url: str | None) -> None:
    with pytest.raises(RunwayDownloadError):
        persist_task_result(make_task(video_url=url), str(tmp_path), hook=fake_hook())
    assert len(mocked.calls) == 0


def test_fresh_link_must_be_http_too(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, status=403, body=b"denied")
    hook = fake_hook({VIDEO_URL: "file:///etc/shadow"})
    with pytest.raises(RunwayDownloadError, match="only http"):
        persist_task_result(make_task(), str(tmp_path), hook=hook, include_thumbnail=False)


def test_runway_task_object_is_accepted(mocked: responses.RequestsMock, memory_dest: str) -> None:
    serve(mocked)
    task = RunwayTask.from_dict(make_task())
    result = persist_task_result(task, memory_dest, hook=fake_hook(), include_thumbnail=False)
    assert result["video_size"] == len(VIDEO)


@pytest.mark.parametrize("lapsed", [403, 404, 410])
def test_lapsed_link_is_refreshed_once(mocked: responses.RequestsMock, tmp_path: Path, lapsed: int) -> None:
    serve(mocked, status=lapsed, body=b"<Error>expired</Error>", content_type="application/xml")
    serve(mocked, FRESH_VIDEO_URL)
    hook = fake_hook({VIDEO_URL: FRESH_VIDEO_URL})
    result = persist_task_result(make_task(), str(tmp_path), hook=hook, include_thumbnail=False)
    assert hook.calls == [VIDEO_URL]
    assert result["video_size"] == len(VIDEO)
    assert (tmp_path / "task-0123abcd.mp4").read_bytes() == VIDEO


def test_gone_even_with_a_fresh_link_is_an_expired_result(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, status=404, body=b"gone")
    serve(mocked, FRESH_VIDEO_URL, status=410, body=b"gone")
    hook = fake_hook({VIDEO_URL: FRESH_VIDEO_URL})
    with pytest.raises(RunwayResultExpiredError, match="HTTP 410") as err:
        persist_task_result(make_task(), str(tmp_path), hook=hook)
    assert "secret-token" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_old_task_gets_a_fresh_link_before_any_download(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, FRESH_VIDEO_URL)
    hook = fake_hook({VIDEO_URL: FRESH_VIDEO_URL})
    old = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()
    persist_task_result(make_task(created_at=old), str(tmp_path), hook=hook, include_thumbnail=False)
    assert hook.calls == [VIDEO_URL]
    assert gets(mocked, VIDEO_URL) == 0
    assert gets(mocked, FRESH_VIDEO_URL) == 1


def test_server_error_is_retryable_and_leaves_nothing(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, status=502, body=b"bad gateway", content_type="text/html")
    with pytest.raises(RunwayDownloadError, match="HTTP 502") as err:
        persist_task_result(make_task(), str(tmp_path), hook=fake_hook())
    assert err.value.retryable
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "body", "content_type"),
    [
        (VIDEO_URL, b"<html>login</html>", "text/html"),
        (VIDEO_URL, VIDEO, "image/png"),
        (IMAGE_URL, IMAGE, "video/mp4"),
        (IMAGE_URL, b"{}", "application/json"),
    ],
)
def test_wrong_content_type_is_refused(
    mocked: responses.RequestsMock, memory_dest: str, url: str, body: bytes, content_type: str
) -> None:
    serve(mocked)
    serve(mocked, IMAGE_URL, IMAGE, content_type="image/png")
    mocked.replace(responses.GET, url, body=body, content_type=content_type)
    with pytest.raises(RunwayDownloadError, match="content type") as err:
        persist_task_result(make_task(), memory_dest, hook=fake_hook())
    assert not err.value.retryable


def test_octet_stream_video_is_accepted(mocked: responses.RequestsMock, memory_dest: str) -> None:
    serve(mocked, content_type="application/octet-stream")
    result = persist_task_result(make_task(), memory_dest, hook=fake_hook(), include_thumbnail=False)
    assert result["video_size"] == len(VIDEO)


def test_size_cap_from_content_length(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked)
    with pytest.raises(RunwayDownloadError, match="exceed the cap of 1000"):
        persist_task_result(make_task(), str(tmp_path), hook=fake_hook(), max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dest_kind", ["file", "memory"])
def test_size_cap_while_streaming_without_content_length(
    mocked: responses.RequestsMock, tmp_path: Path, memory_dest: str, dest_kind: str
) -> None:
    serve(mocked, headers={})
    dest = str(tmp_path) if dest_kind == "file" else memory_dest
    with pytest.raises(RunwayDownloadError, match="more than the cap of 4096"):
        persist_task_result(make_task(), dest, hook=fake_hook(), max_bytes=4096, chunk_size=1024)
    fs, folder = fsspec.core.url_to_fs(dest if dest_kind == "memory" else f"file://{tmp_path}")
    assert not fs.exists(f"{folder.rstrip('/')}/task-0123abcd.mp4")
    if dest_kind == "file":
        assert list(tmp_path.iterdir()) == []


def test_truncated_body_is_retryable_and_cleaned_up(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, headers={"Content-Length": str(len(VIDEO) + 100)})
    with pytest.raises(RunwayDownloadError, match="broke off") as err:
        persist_task_result(make_task(), str(tmp_path), hook=fake_hook())
    assert err.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_remote_size_is_skipped_via_head(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    (tmp_path / "task-0123abcd.mp4").write_bytes(b"k" * len(VIDEO))
    mocked.add(responses.HEAD, VIDEO_URL, headers={"Content-Length": str(len(VIDEO))}, content_type="video/mp4")
    serve(mocked)
    result = persist_task_result(make_task(), str(tmp_path), hook=fake_hook(), include_thumbnail=False)
    assert result["video_size"] == len(VIDEO)
    assert gets(mocked, VIDEO_URL) == 0
    assert (tmp_path / "task-0123abcd.mp4").read_bytes() == b"k" * len(VIDEO)


def test_skip_falls_back_to_get_headers_when_head_is_unsupported(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    (tmp_path / "task-0123abcd.mp4").write_bytes(b"k" * len(VIDEO))
    mocked.add(responses.HEAD, VIDEO_URL, status=405)
    serve(mocked)
    persist_task_result(make_task(), str(tmp_path), hook=fake_hook(), include_thumbnail=False)
    assert (tmp_path / "task-0123abcd.mp4").read_bytes() == b"k" * len(VIDEO)


def test_existing_file_with_other_size_is_replaced(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    (tmp_path / "task-0123abcd.mp4").write_bytes(b"partial")
    mocked.add(responses.HEAD, VIDEO_URL, headers={"Content-Length": str(len(VIDEO))})
    serve(mocked)
    persist_task_result(make_task(), str(tmp_path), hook=fake_hook(), include_thumbnail=False)
    assert (tmp_path / "task-0123abcd.mp4").read_bytes() == VIDEO
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task-0123abcd.mp4"]


def test_missing_thumbnail_is_not_an_error(mocked: responses.RequestsMock, memory_dest: str) -> None:
    serve(mocked)
    result = persist_task_result(make_task(image_url=None), memory_dest, hook=fake_hook())
    assert result["thumbnail_path"] is None
    assert result["video_size"] == len(VIDEO)


def test_invalid_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunwayDownloadError, match="positive"):
        persist_task_result(make_task(), str(tmp_path), hook=fake_hook(), max_bytes=0)
