"""A loopback stand-in for KIE's file host: answers ``POST /api/file-stream-upload`` as KIE documents."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

API_KEY = "test-key-0123456789abcdef"
#: Bytes of the body read before the file part; the provider sends the text fields first.
HEAD_BYTES = 8 * 1024


@dataclass
class Received:
    """One request as the host saw it."""

    path: str
    headers: dict[str, str]
    length: int
    sha256: str
    body: bytes | None
    upload_path: str | None
    file_name: str | None
    file_type: str | None


#: (status, JSON body) the host answers; ``None`` means the documented success answer.
Answer = tuple[int, dict[str, Any]] | None


@dataclass
class UploadHost:
    url: str = ""
    keep_bodies: bool = False
    requests: list[Received] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    answer_for: Callable[[Received], Answer] | None = None


def _field(head: bytes, name: str) -> str | None:
    found = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n([^\r]*)\r\n', head)
    return found.group(1).decode() if found else None


def _file_type(head: bytes) -> str | None:
    found = re.search(rb'name="file"; filename="[^"]*"\r\nContent-Type: ([^\r]*)\r\n', head)
    return found.group(1).decode() if found else None


@pytest.fixture
def upload_host() -> Iterator[UploadHost]:
    """A threaded HTTP server on 127.0.0.1 that reads each body in 64 KiB chunks.

    It keeps the whole body only when ``keep_bodies`` is set; otherwise it keeps the first bytes (to read
    the text fields) and the body's length and SHA-256, so a 50 MB upload costs the server no memory.
    """
    state = UploadHost()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            digest = hashlib.sha256()
            head = b""
            kept: list[bytes] = []
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(64 * 1024, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                digest.update(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                if state.keep_bodies:
                    kept.append(chunk)
            received = Received(
                path=self.path,
                headers=dict(self.headers.items()),
                length=length - remaining,
                sha256=digest.hexdigest(),
                body=b"".join(kept) if state.keep_bodies else None,
                upload_path=_field(head, "uploadPath"),
                file_name=_field(head, "fileName"),
                file_type=_file_type(head),
            )
            state.requests.append(received)
            answer = state.answers.pop(0) if state.answers else None
            if answer is None and state.answer_for is not None:
                answer = state.answer_for(received)
            if answer is None:
                file_path = f"{received.upload_path}/{received.file_name}"
                answer = (
                    200,
                    {
                        "success": True,
                        "code": 200,
                        "msg": "File uploaded successfully",
                        "data": {
                            "fileName": received.file_name,
                            "filePath": file_path,
                            "downloadUrl": f"{state.url}/files/{file_path}",
                            "fileSize": received.length,
                            "mimeType": received.file_type,
                            "uploadedAt": "2026-12-01T00:00:00.000Z",
                        },
                    },
                )
            status, payload = answer
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Bearer(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {API_KEY}"
        return request


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A session authenticating like the hook's; no proxy or ``.netrc`` from the environment."""
    with requests.Session() as plain:
        plain.trust_env = False
        plain.auth = _Bearer()
        yield plain
