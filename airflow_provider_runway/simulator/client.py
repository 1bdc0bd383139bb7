"""A small synchronous client of the simulator's ``/_sim/`` control API (standard library only)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from airflow_provider_runway.simulator.engine import account_label


class SimulatorError(RuntimeError):
    """The control API refused a request."""


class SimulatorClient:
    """Drive a running simulator (in-process or a separate ``runway-sim``) through ``/_sim/``.

    :param url: base URL of the simulator, e.g. ``http://127.0.0.1:8089``.
    :param timeout: seconds per control request.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_sim/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise SimulatorError(f"{method} /_sim/{path} -> HTTP {exc.code}: {detail}") from None

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "health"))

    def counters(self) -> dict[str, Any]:
        """Requests per endpoint and per task, tasks and credits per account, callbacks, faults fired,
        ``rate_limited`` (429s per account) and ``rate_limited_total``, ``concurrency_failures`` per
        account, ``uploads`` per endpoint, ``uploads_total`` and ``upload_bytes``."""
        return dict(self._call("GET", "counters"))

    def config(self) -> dict[str, Any]:
        return dict(self._call("GET", "config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change configuration fields at runtime; returns the new configuration."""
        return dict(self._call("POST", "config", changes))

    def inject_fault(
        self,
        endpoint: str = "*",
        kind: str = "http500",
        *,
        count: int | None = None,
        fraction: float | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Replace the next ``count`` responses (or a ``fraction`` of them) of ``endpoint`` by a fault.

        ``endpoint``: ``generate``, ``extend``, ``record-detail``, ``aleph-generate``, ``record-info``,
        ``credit``, ``download-url``, ``files``, ``file-stream-upload``, ``file-url-upload``,
        ``file-base64-upload``, ``tempfile`` (uploaded files), an API path, or ``*``. ``kind``: ``http500``,
        ``http455``, ``http408``, ``http429`` (with ``retry_after``), ``malformed_json``, ``html_error``, ``slow``
        (with ``delay``), ``drop``, ``drop_after``, ``cap_hourly`` / ``cap_daily`` / ``cap_total`` (a 429 for a
        reached usage cap of the key), ``ip_refused`` (KIE's 401 to an address off the key's IP whitelist).
        Without count or fraction, ``count=1``.
        """
        if count is None and fraction is None:
            count = 1
        body: dict[str, Any] = {"endpoint": endpoint, "kind": kind, "count": count, "fraction": fraction}
        if retry_after is not None:
            body["retry_after"] = retry_after
        if delay is not None:
            body["delay"] = delay
        return dict(self._call("POST", "faults", body))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def fail_task(
        self, task_id: str, code: int = 400, message: str = "Inappropriate content detected", *, immediate: bool = True
    ) -> dict[str, Any]:
        """Make a task fail with ``code`` and ``message``: now, or when it would have finished."""
        path = f"tasks/{urllib.parse.quote(task_id, safe='')}/fail"
        return dict(self._call("POST", path, {"code": code, "message": message, "immediate": immediate}))

    def task_info(self, task_id: str) -> dict[str, Any]:
        """State, phase times and ``completes_at`` (real epoch seconds; ``None`` while held by a pause)."""
        return dict(self._call("GET", f"tasks/{urllib.parse.quote(task_id, safe='')}"))

    def tasks(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "tasks"))

    def pause(self) -> None:
        """Hold every task that reaches ``generating`` there."""
        self._call("POST", "pause")

    def resume(self) -> int:
        """Release held tasks (they finish now); returns how many were held."""
        return int(self._call("POST", "resume")["released"])

    def reset(self) -> None:
        """Forget tasks, accounts, counters, faults and the pause (the configuration stays)."""
        self._call("POST", "reset")

    def set_credits(self, api_key: str, credits: int) -> dict[str, Any]:
        return dict(self._call("POST", "accounts", {"api_key": api_key, "credits": credits}))

    def account(self, api_key: str) -> dict[str, Any]:
        """Credits, tasks created and credits spent of the account of ``api_key``."""
        return dict(self._call("GET", f"accounts?label={account_label(api_key)}"))

    @staticmethod
    def account_label(api_key: str) -> str:
        """How ``api_key`` is named in :meth:`counters` (the key itself is never shown)."""
        return account_label(api_key)

    def wait_for(self, task_id: str, state: str | tuple[str, ...], timeout: float = 10.0) -> dict[str, Any]:
        """Poll :meth:`task_info` until the task is in ``state``; raises ``TimeoutError``."""
        wanted = (state,) if isinstance(state, str) else state
        deadline = time.monotonic() + timeout
        while True:
            info = self.task_info(task_id)
            if info["state"] in wanted:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {info['state']!r} after {timeout}s")
            time.sleep(0.02)

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` callback deliveries have finished (delivered or given up); returns the
        latest delivery log entries (``task_id``, ``url``, ``attempts``, ``status``, ``delivered``, ``signed``)."""
        deadline = time.monotonic() + timeout
        while True:
            counters = self.counters()
            finished = counters["callbacks_sent"] + counters["callbacks_failed"]
            if finished >= count:
                return list(counters["callbacks"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{finished} of {count} callbacks after {timeout}s")
            time.sleep(0.02)
