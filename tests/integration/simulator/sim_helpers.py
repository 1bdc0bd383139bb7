"""Helpers for the simulator's integration tests: a thin HTTP client and a callback receiver."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import requests
from aiohttp import web

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.errors import parse_envelope

KEY = "sim-test-key"


class Api:
    """Calls the simulator like a KIE client would, over real loopback HTTP."""

    def __init__(self, url: str, key: str = KEY) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    @staticmethod
    def data(response: requests.Response) -> Any:
        """The envelope's data, or the core's exception for the error (either error style)."""
        return parse_envelope(response.status_code, response.content, retry_after=response.headers.get("Retry-After"))

    def generate(self, **fields: Any) -> str:
        body = {"prompt": "a red fox in the snow", "duration": 5, "quality": "720p", "aspectRatio": "16:9", **fields}
        return str(self.data(self.post(wire.RUNWAY_GENERATE_PATH, body))["taskId"])

    def aleph(self, **fields: Any) -> str:
        body = {"prompt": "make it winter", "videoUrl": "https://example.com/in.mp4", **fields}
        return str(self.data(self.post(wire.ALEPH_GENERATE_PATH, body))["taskId"])

    def record(self, task_id: str) -> dict[str, Any]:
        return dict(self.data(self.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": task_id})))

    def aleph_record(self, task_id: str) -> dict[str, Any]:
        return dict(self.data(self.get(wire.ALEPH_RECORD_INFO_PATH, params={"taskId": task_id})))

    def wait_runway(self, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(task_id)
            if record["state"] in ("success", "fail") or time.monotonic() > deadline:
                return record
            time.sleep(0.03)

    def wait_aleph(self, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.aleph_record(task_id)
            if record["successFlag"] == 1 or record["errorCode"] or time.monotonic() > deadline:
                return record
            time.sleep(0.03)


class Receiver:
    """A small aiohttp server on 127.0.0.1 that records callbacks and answers with scripted statuses."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answers for the next requests; 200 once exhausted
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": await request.json(), "path": request.path})
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)
