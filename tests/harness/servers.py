"""Loopback servers around the simulator: a rewriting proxy, a huge-body server and a callback inbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

Replaced = tuple[int, bytes, str] | None
Rewrite = Callable[[str, Mapping[str, str], int, bytes, int], Replaced]


def python_child(call: str, *args: str, **popen: Any) -> subprocess.Popen[Any]:
    """Start ``python -c`` running ``call`` (e.g. ``"tests.harness.servers:serve_big_bodies"``) with ``args``."""
    module, name = call.split(":")
    code = f"import sys; from {module} import {name}; {name}(*sys.argv[1:])"
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONPATH": path}, **popen)


class RewritingProxy:
    """A loopback HTTP proxy in front of the simulator that can rewrite answers.

    The simulator serves only documented shapes; the proxy turns them into the odd ones real
    clients meet (unknown states, the seed's flat variant, missing ``data``, 404 right after
    create, huge error bodies). ``rewrite(path, query, status, body, nth)`` returns a replacement
    ``(status, body, content_type)`` or ``None``; ``nth`` counts the requests for the same
    ``taskId`` (1 for the first).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite: Rewrite | None = None
        self.hide_length = False
        self.url = ""
        self.seen: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> RewritingProxy:
        self._thread = threading.Thread(target=self._serve, name="rewriting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the rewriting proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def reset(self, rewrite: Rewrite | None = None, hide_length: bool = False) -> None:
        self.rewrite = rewrite
        self.hide_length = hide_length
        self.seen.clear()

    def _serve(self) -> None:
        from aiohttp import ClientSession, web

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        session_box: list[ClientSession] = []

        async def forward(request: web.Request) -> web.StreamResponse:
            if not session_box:
                session_box.append(ClientSession())
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
            async with session_box[0].request(
                request.method, f"{self.upstream}{request.rel_url}", data=body or None, headers=headers
            ) as upstream:
                status, payload = upstream.status, await upstream.read()
                content_type = upstream.headers.get("Content-Type", "application/json")
                retry_after = upstream.headers.get("Retry-After")
            task_id = request.query.get("taskId", "")
            nth = 0
            if task_id:
                self.seen[task_id] += 1
                nth = self.seen[task_id]
            replaced = self.rewrite(request.path, request.query, status, payload, nth) if self.rewrite else None
            if replaced is not None:
                status, payload, content_type = replaced
            headers = {"Content-Type": content_type}
            if retry_after:
                headers["Retry-After"] = retry_after
            if self.hide_length:  # chunked: the client learns the size only by reading
                response = web.StreamResponse(status=status, headers=headers)
                response.enable_chunked_encoding()
                await response.prepare(request)
                with contextlib.suppress(ConnectionError):  # the client may stop reading at its cap
                    for start in range(0, len(payload), 64 * 1024):
                        await response.write(payload[start : start + 64 * 1024])
                    await response.write_eof()
                return response
            return web.Response(status=status, body=payload, headers=headers)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)

        async def start() -> str:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        self.url = loop.run_until_complete(start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())  # closes open keep-alive connections too
            if session_box:
                loop.run_until_complete(session_box[0].close())
            loop.close()


def envelope(data: Any, code: int = 200, msg: str = "success") -> bytes:
    """A KIE response body."""
    return json.dumps({"code": code, "msg": msg, "data": data}).encode()


def serve_big_bodies(status: str, size: str, content_type: str, chunked: str) -> None:
    """Answer every request with ``size`` bytes, generated as they are sent; prints the port first.

    Run in a child process by :func:`big_body_server`, so the server's own buffers do not count
    in the client's memory.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    total, is_chunked = int(size), chunked == "1"
    block = (b"<html>" + b"x" * 65530)[: 64 * 1024]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            self.send_response(int(status))
            self.send_header("Content-Type", content_type)
            if is_chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", size)
            self.end_headers()
            sent = 0
            try:
                while sent < total:
                    part = block[: min(len(block), total - sent)]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if is_chunked else part)
                    sent += len(part)
                if is_chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextlib.contextmanager
def big_body_server(status: int, size: int, content_type: str = "text/html", chunked: bool = False) -> Iterator[str]:
    """Run :func:`serve_big_bodies` in a child process; yields its base URL."""
    args = (str(status), str(size), content_type, "1" if chunked else "0")
    child = python_child(f"{__name__}:serve_big_bodies", *args, stdout=subprocess.PIPE, text=True)
    try:
        port = child.stdout.readline().strip() if child.stdout else ""
        if not port.isdigit():
            raise RuntimeError("the big-body server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()


class CallbackInbox:
    """A loopback web endpoint that keeps every callback (headers and raw body) it receives."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[dict[str, str], bytes]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                inbox.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/runway/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
