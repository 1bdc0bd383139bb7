"""Webhook signatures as KIE documents them.

``X-Webhook-Signature`` = base64(HMAC-SHA256(key, taskId + "." + timestamp)) and
``X-Webhook-Timestamp`` = unix seconds. The signature covers the task id and the timestamp only,
not the rest of the body.

:func:`verify_webhook` checks a received callback (signature, clock skew, replays) and
:func:`parse_callback_body` turns either family's body into a :class:`RunwayTask`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from airflow_provider_runway.core.results import RunwayTask, parse_callback

SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"


def compute_signature(key: str | bytes, task_id: str, timestamp: int | str) -> str:
    """The base64 signature of ``task_id`` at ``timestamp`` under ``key``."""
    secret = key.encode() if isinstance(key, str) else key
    message = f"{task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode("ascii")


def signature_matches(key: str | bytes, task_id: str, timestamp: int | str, signature: str) -> bool:
    """Constant-time comparison of ``signature`` with the expected one."""
    expected = compute_signature(key, task_id, timestamp)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii", "replace"))


#: Default tolerance, in seconds, between a callback's timestamp and the receiver's clock.
DEFAULT_MAX_SKEW = 300.0
#: Largest callback body parsed; KIE's callbacks are well under 4 KiB.
MAX_CALLBACK_BODY_BYTES = 1024 * 1024


class WebhookVerificationError(ValueError):
    """A callback failed verification; ``reason`` is a short machine-readable cause.

    Reasons: ``no_key``, ``malformed_body``, ``missing_header``, ``bad_timestamp``, ``bad_signature``,
    ``stale``, ``future``, ``replayed``. A receiver usually answers 401 (or 400 for a malformed body);
    for ``replayed`` a 200 is fine, since the first delivery was already accepted.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ReplayCache:
    """Remembers ``(task id, timestamp)`` pairs of accepted callbacks for ``ttl`` seconds.

    In-process and thread-safe; a web app served by several processes needs a shared store
    (subclass and override :meth:`check_and_add`, e.g. with Redis ``SET NX EX``). The number of
    remembered entries is bounded by ``max_entries`` (oldest dropped first) so a flood cannot
    exhaust memory.

    :param ttl: seconds to remember an entry; at least twice the verifier's ``max_skew``.
    :param max_entries: upper bound on remembered entries.
    """

    def __init__(self, ttl: float = 2 * DEFAULT_MAX_SKEW, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, task_id: str, timestamp: str, now: float) -> bool:
        """Record the pair; return ``False`` when it was already recorded (a replay)."""
        key = (task_id, timestamp)
        with self._lock:
            self._prune(now)
            if key in self._entries:
                return False
            self._entries[key] = now + self.ttl
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return True

    def _prune(self, now: float) -> None:
        while self._entries:
            key, expires_at = next(iter(self._entries.items()))
            if expires_at > now:
                break
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _decode_json(body: bytes | str | Mapping[str, Any]) -> Any:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes):
        if len(body) > MAX_CALLBACK_BODY_BYTES:
            raise ValueError(f"Callback body is larger than {MAX_CALLBACK_BODY_BYTES} bytes")
        body = body.decode("utf-8")
    if len(body) > MAX_CALLBACK_BODY_BYTES:
        raise ValueError(f"Callback body is larger than {MAX_CALLBACK_BODY_BYTES} bytes")
    return json.loads(body)


def parse_callback_body(body: bytes | str | Mapping[str, Any]) -> RunwayTask:
    """Normalise a callback body of either family (raw bytes, text or decoded JSON).

    Raises :class:`ValueError` when the body is not JSON or carries no task id.
    """
    try:
        payload = _decode_json(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Callback body is not valid JSON: {err}") from None
    return parse_callback(payload)


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any],
    key: str,
    *,
    max_skew: float = DEFAULT_MAX_SKEW,
    now: float | None = None,
    replay_cache: ReplayCache | None = None,
) -> RunwayTask:
    """Verify a signed KIE callback and return its normalised task.

    Checks, in order: the body names a task, both headers are present, the signature matches
    (constant-time), the timestamp is within ``max_skew`` seconds of ``now`` (default: the
    current time) in either direction, and, with a ``replay_cache``, that this task id and
    timestamp were not accepted before.

    The signature covers only the task id and the timestamp, not the URLs in the body: treat
    them as hints and read the task from the API (``RunwayHook.get_task``) before trusting them.

    :raises WebhookVerificationError: with ``reason`` set; the message never contains the key.
    """
    if not key:
        raise WebhookVerificationError("no_key", "No webhook HMAC key is configured; cannot verify the callback")
    try:
        task = parse_callback_body(body)
    except ValueError as err:
        raise WebhookVerificationError("malformed_body", f"Callback body rejected: {err}") from None
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    missing = [name for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, timestamp)) if not value]
    if signature is None or timestamp is None:
        raise WebhookVerificationError("missing_header", f"Callback is missing header(s): {', '.join(missing)}")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(
            "bad_timestamp", f"{TIMESTAMP_HEADER} is not unix seconds: {timestamp[:40]!r}"
        ) from None
    if not signature_matches(key, task.task_id, timestamp, signature):
        raise WebhookVerificationError(
            "bad_signature", f"{SIGNATURE_HEADER} does not match for task {task.task_id[:128]!r}"
        )
    current = time.time() if now is None else now
    if current - sent_at > max_skew:
        raise WebhookVerificationError(
            "stale", f"Callback timestamp is {current - sent_at:.0f} s old (more than {max_skew:.0f} s allowed)"
        )
    if sent_at - current > max_skew:
        raise WebhookVerificationError(
            "future",
            f"Callback timestamp is {sent_at - current:.0f} s in the future (more than {max_skew:.0f} s allowed)",
        )
    if replay_cache is not None and not replay_cache.check_and_add(task.task_id, timestamp, current):
        raise WebhookVerificationError(
            "replayed", f"Callback for task {task.task_id[:128]!r} at {timestamp} was already accepted"
        )
    return task
