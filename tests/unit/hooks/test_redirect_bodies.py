"""A redirect's body is never read: a gzip 302 that expands to 300 MiB costs the worker nothing.

``requests`` reads and decodes a 3xx body that has a ``Location`` to prepare the next hop, even with
``allow_redirects=False``, before the provider's capped read runs. A real loopback server sends the
bomb; the memory Python allocates during the call (tracemalloc's peak) must stay far below its size.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_runway.core.errors import RunwayError
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.unit.hooks.conftest import API_KEY, set_connection

MIB = 1024 * 1024
#: What the 302's body expands to, and the most the call may allocate while refusing it.
BOMB_EXPANDED_BYTES = 300 * MIB
MAX_GROWTH_BYTES = 20 * MIB
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def _gzip_of_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(size // MIB)]
    return b"".join([*parts, compressor.flush()])


class _BombServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    bomb = b""
    requests_seen: list[str]


class _RedirectBomb(http.server.BaseHTTPRequestHandler):
    server: _BombServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            length -= len(self.rfile.read(min(length, 64 * 1024)) or b"x" * length)
        self.server.requests_seen.append(f"{self.command} {self.path}")
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.bomb)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client closes without reading, as it should
            self.wfile.write(self.server.bomb)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _gzip_of_zeros(BOMB_EXPANDED_BYTES)


@pytest.fixture
def bomb_server(bomb: bytes) -> Iterator[_BombServer]:
    server = _BombServer(("127.0.0.1", 0), _RedirectBomb)
    server.bomb = bomb
    server.requests_seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook(bomb_server: _BombServer, monkeypatch: pytest.MonkeyPatch) -> RunwayHook:
    url = f"http://127.0.0.1:{bomb_server.server_address[1]}"
    set_connection(
        monkeypatch,
        {"conn_type": "runway", "host": url, "password": API_KEY, "extra": {"upload_base_url": url}},
    )
    return RunwayHook(retry_limit=0)


def _peak_allocated_during(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_the_bomb_is_what_the_issue_describes(bomb: bytes) -> None:
    assert len(bomb) < 400 * 1024
    assert len(zlib.decompress(bomb, 31)) == BOMB_EXPANDED_BYTES


def _api_call(hook: RunwayHook, tmp_path: Path) -> None:
    with pytest.raises(RunwayError) as error:
        hook.get_task("task-1")
    assert "302" in str(error.value)


def _upload(hook: RunwayHook, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(PNG)
    with pytest.raises(RunwayError) as error:
        hook.upload_file(image, field="image_url")
    assert "302" in str(error.value)


def _test_connection(hook: RunwayHook, tmp_path: Path) -> None:
    ok, message = hook.test_connection()
    assert not ok
    assert "302" in message


@pytest.mark.parametrize("call", [_api_call, _upload, _test_connection], ids=["api", "upload", "test_connection"])
def test_a_redirect_body_is_not_read(
    call: Callable[[RunwayHook, Path], None], hook: RunwayHook, bomb_server: _BombServer, tmp_path: Path
) -> None:
    growth = _peak_allocated_during(lambda: call(hook, tmp_path))
    assert bomb_server.requests_seen, "the call never reached the server"
    assert len(bomb_server.requests_seen) == 1, "a redirect was followed"
    assert growth < MAX_GROWTH_BYTES, f"allocated {growth / MIB:.1f} MiB for a redirect"
