"""Callback delivery: one background task posts the documented payload when a task ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from airflow_provider_runway.core.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature
from airflow_provider_runway.simulator.engine import ALEPH, SimEngine, Task

log = logging.getLogger(__name__)

MAX_LOGGED_CALLBACKS = 1000


def callback_payload(engine: SimEngine, task: Task) -> dict[str, Any]:
    """The body KIE posts for a finished ``task`` (Runway snake_case ``data``; Aleph top-level ``taskId``)."""
    video_url = f"{task.base_url}/files/{task.task_id}.mp4"
    image_url = f"{task.base_url}/files/{task.task_id}.png"
    failed = engine.snapshot(task).state == "fail"
    code, message = task.failure if failed and task.failure else (200, "")
    if task.family == ALEPH:
        if failed:
            return {"code": code, "msg": message, "data": None, "taskId": task.task_id}
        data = {"result_video_url": video_url, "result_image_url": image_url}
        return {"code": 200, "msg": "success", "data": data, "taskId": task.task_id}
    if failed:  # KIE sends the result keys empty on failure
        return {
            "code": code,
            "msg": message,
            "data": {"task_id": task.task_id, "video_id": "", "video_url": "", "image_url": ""},
        }
    data = {"task_id": task.task_id, "video_id": task.video_id, "video_url": video_url, "image_url": image_url}
    return {"code": 200, "msg": "All generated successfully.", "data": data}


class CallbackDispatcher:
    """Scans the engine for newly finished tasks with a callback URL and posts their payloads."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine
        self._session: aiohttp.ClientSession | None = None
        self._scanner: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._scanner = asyncio.create_task(self._scan())

    async def stop(self) -> None:
        pending = [t for t in (self._scanner, *self._deliveries) if t is not None]
        for job in pending:
            job.cancel()
        for job in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        if self._session is not None:
            await self._session.close()

    async def _scan(self) -> None:
        while True:
            await asyncio.sleep(self.engine.config.callback_scan_interval)
            for task in self.engine.due_callbacks():
                job = asyncio.create_task(self.deliver(task))
                self._deliveries.add(job)
                job.add_done_callback(self._deliveries.discard)

    def _headers(self, task_id: str) -> dict[str, str]:
        key = self.engine.config.webhook_hmac_key
        if not key:
            return {}
        stamp = int(time.time())
        return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: compute_signature(key, task_id, stamp)}

    async def deliver(self, task: Task) -> None:
        """POST the payload, retried up to ``callback_attempts`` times; the outcome goes to the counters."""
        assert self._session is not None
        cfg = self.engine.config
        body = callback_payload(self.engine, task)
        entry: dict[str, Any] = {"task_id": task.task_id, "url": task.callback_url, "attempts": 0, "status": None}
        timeout = aiohttp.ClientTimeout(total=cfg.callback_timeout)
        for attempt in range(1, cfg.callback_attempts + 1):
            entry["attempts"] = attempt
            headers = self._headers(task.task_id)
            entry["signed"] = bool(headers)
            try:
                async with self._session.post(str(task.callback_url), json=body, headers=headers, timeout=timeout) as r:
                    entry["status"] = r.status
                    if 200 <= r.status < 300:
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                entry["status"] = type(exc).__name__
            if attempt < cfg.callback_attempts:
                await asyncio.sleep(cfg.callback_retry_delay)
        delivered = isinstance(entry["status"], int) and 200 <= entry["status"] < 300
        entry["delivered"] = delivered
        if delivered:
            self.engine.callbacks_sent += 1
        else:
            self.engine.callbacks_failed += 1
            log.warning("runway-sim: callback for %s failed after %d attempts", task.task_id, entry["attempts"])
        self.engine.callback_log.append(entry)
        del self.engine.callback_log[:-MAX_LOGGED_CALLBACKS]
