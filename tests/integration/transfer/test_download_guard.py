"""Downloads over real loopback HTTP: redirects inward, a gzip bomb, a per-file deadline, allowed hosts.

The simulator (on 127.0.0.1) is the API; small servers on 127.0.0.1 and 127.0.0.2 play file hosts.
Nothing here contacts an address outside 127.0.0.0/8.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY
from airflow_provider_runway.transfer.downloads import RunwayDownloadError, persist_task_result

from .conftest import finish_task

pytestmark = pytest.mark.integration

Finished = Callable[..., dict[str, Any]]
#: What a handler answers: status, headers, and the body as chunks (each may be preceded by a pause).
Answer = tuple[int, dict[str, str], Iterator[bytes]]


@dataclass
class FileHost:
    """A loopback HTTP server that counts connections and requests and answers with ``handler``."""

    url: str
    connections: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Host header)
    stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def file_host(host: str, handler: Callable[[str, str], Answer]) -> Iterator[FileHost]:
    state = FileHost(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def answer(self) -> None:
            state.requests.append((self.command, self.path, self.headers.get("Host", "")))
            status, headers, body = handler(self.command, self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                for chunk in body:
                    if state.stop.is_set():
                        return
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:  # the client went away: expected when it refuses or gives up
                return

        do_GET = answer
        do_HEAD = answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request: Any, client_address: Any) -> None:
            state.connections += 1
            super().process_request(request, client_address)

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (refused encoding, deadline) resets the connection: expected

    server = Server((host, 0), Handler)
    state.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def video(body: bytes, **headers: str) -> Answer:
    return 200, {"Content-Type": "video/mp4", "Content-Length": str(len(body)), **headers}, iter([body])


def moved(location: str) -> Answer:
    return 302, {"Location": location, "Content-Length": "0"}, iter([b""])


def pauses(first: bytes, seconds: float, then: bytes, stop: threading.Event) -> Iterator[bytes]:
    """``first``, then ``then`` every ``seconds`` until stopped (a stalled or dripping file host)."""
    yield first
    while not stop.wait(seconds):
        if then:
            yield then


def stored_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


# -------------------------------------------------------------------- redirects to internal hosts


def test_a_redirect_from_the_api_host_to_another_loopback_address_stores_nothing_and_reaches_nothing(
    finished: Finished, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path
) -> None:
    assert runway_sim.url.startswith("http://127.0.0.1:")  # the API host; its files download as usual
    task = finished()
    with (
        file_host("127.0.0.2", lambda method, path: video(b"internal secrets")) as internal,
        file_host("127.0.0.1", lambda method, path: moved(f"{internal.url}/latest/meta-data")) as redirector,
    ):
        task["video_url"] = f"{redirector.url}/files/{task['task_id']}.mp4"
        with pytest.raises(RunwayDownloadError, match=r"127\.0\.0\.2.*loopback, private, link-local") as err:
            persist_task_result(task, str(tmp_path / "out"), hook=sim_hook, include_thumbnail=False)
        assert not err.value.retryable
        assert [method for method, _, _ in redirector.requests] == ["GET"]  # the API host is allowed
        assert internal.connections == 0 and internal.requests == []  # 127.0.0.2 never reached
    assert stored_files(tmp_path / "out") == []


def test_the_api_hosts_own_files_still_download(finished: Finished, sim_hook: RunwayHook, tmp_path: Path) -> None:
    result = persist_task_result(finished(), str(tmp_path), hook=sim_hook)
    assert result["video_size"] > 0 and result["thumbnail_size"] > 0


# -------------------------------------------------------------------- allowed hosts, pinned address


@pytest.fixture
def files_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A host name that resolves to 127.0.0.1 (through a stub; every other lookup is the real one)."""
    name = "files.internal.test"
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return name


@pytest.mark.parametrize("allowed", [False, True])
def test_an_internal_file_host_needs_download_allowed_hosts(
    runway_sim: Any,
    files_name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    allowed: bool,
) -> None:
    extra: dict[str, Any] = {"retry_delay": 0.05}
    if allowed:
        extra["download_allowed_hosts"] = [files_name.upper()]
    conn = {"conn_type": "runway", "host": runway_sim.url, "password": TEST_API_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    hook = RunwayHook("runway_default")
    task = finish_task(hook)
    body = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 1000
    with file_host("127.0.0.1", lambda method, path: video(body)) as files:
        port = files.url.rsplit(":", 1)[1]
        task["video_url"] = f"http://{files_name}:{port}/v.mp4"
        if allowed:
            result = persist_task_result(task, str(tmp_path), hook=hook, include_thumbnail=False)
            assert Path(result["video_path"].removeprefix("file://")).read_bytes() == body
            # Connected to the checked address, with the name kept for the Host header.
            assert files.requests == [("GET", "/v.mp4", f"{files_name}:{port}")]
        else:
            with pytest.raises(RunwayDownloadError, match="download_allowed_hosts"):
                persist_task_result(task, str(tmp_path), hook=hook, include_thumbnail=False)
            assert files.connections == 0
            assert stored_files(tmp_path) == []


# -------------------------------------------------------------------- the gzip bomb

BOMB_DECODED = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 0.5 MB of gzip that decodes to 512 MiB of zeros, built without holding the 512 MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(BOMB_DECODED // len(zeros))]
    parts.append(packer.flush())
    return b"".join(parts)


def test_the_gzip_bomb_stays_under_20_mib(
    finished: Finished, sim_hook: RunwayHook, gzip_bomb: bytes, tmp_path: Path
) -> None:
    assert 400_000 < len(gzip_bomb) < 600_000
    task = finished()
    with file_host("127.0.0.1", lambda method, path: video(gzip_bomb, **{"Content-Encoding": "gzip"})) as bomb:
        task["video_url"] = f"{bomb.url}/bomb.mp4"
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            with pytest.raises(RunwayDownloadError) as err:
                persist_task_result(
                    task, str(tmp_path), hook=sim_hook, include_thumbnail=False, max_bytes=10 * 1024 * 1024
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    growth = peak - before
    print(f"gzip bomb: {len(gzip_bomb)} B body, traced peak growth {growth / 2**20:.2f} MiB ({err.value})")
    assert growth < 20 * 1024 * 1024, f"+{growth / 2**20:.1f} MiB while refusing a gzip bomb"
    assert stored_files(tmp_path) == []


# -------------------------------------------------------------------- the per-file deadline


@pytest.mark.parametrize("behaviour", ["stalls", "drips"])
def test_each_file_has_an_overall_deadline(
    finished: Finished, sim_hook: RunwayHook, tmp_path: Path, behaviour: str
) -> None:
    task = finished()
    stop = threading.Event()
    drip = b"\x00" if behaviour == "drips" else b""

    def slow(method: str, path: str) -> Answer:
        headers = {"Content-Type": "video/mp4", "Content-Length": str(10 * 1024 * 1024)}
        return 200, headers, pauses(b"\x00" * 1024, 0.2, drip, stop)

    with file_host("127.0.0.1", slow) as slow_host:
        task["video_url"] = f"{slow_host.url}/slow.mp4"
        started = time.monotonic()
        try:
            with pytest.raises(RunwayDownloadError, match=r"not stored within 1\.5 s") as err:
                persist_task_result(task, str(tmp_path), hook=sim_hook, include_thumbnail=False, file_deadline=1.5)
        finally:
            stop.set()
        elapsed = time.monotonic() - started
    assert err.value.retryable
    # Without the deadline a stalled host holds the worker for the 60 s read timeout; a drip, forever.
    assert elapsed < 30, f"gave up after {elapsed:.1f} s"
    assert stored_files(tmp_path) == []
