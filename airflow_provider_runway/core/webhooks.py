"""Webhook signatures as KIE documents them.

``X-Webhook-Signature`` = base64(HMAC-SHA256(key, taskId + "." + timestamp)) and
``X-Webhook-Timestamp`` = unix seconds. The signature covers the task id and the timestamp only,
not the rest of the body.

:func:`verify_webhook` checks a received callback (headers, clock skew, signature, replays, in
that order, before the body is interpreted) and :func:`parse_callback_body` turns either family's
body into a :class:`RunwayTask`. Only the task id is signed: everything else in the body, its
shape (which family it looks like) included, is an unsigned hint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_runway.core.results import RunwayTask, TaskFamily, parse_callback

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
#: Largest callback body read: KIE's callbacks (a task id, a state, a message and a few URLs) are well under
#: 4 KiB, so 128 KiB leaves room for long signed URLs and new fields while bounding the work done for
#: a body before its signature is checked.
MAX_CALLBACK_BODY_BYTES = 128 * 1024
#: Deepest nesting of arrays and objects accepted in a callback body; KIE's are two levels deep.
MAX_CALLBACK_DEPTH = 32
#: Longest task id accepted from a callback (as for ids passed to the operators).
MAX_CALLBACK_TASK_ID_LENGTH = 128
#: ``X-Webhook-Timestamp``: unix seconds, digits only.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookVerificationError(ValueError):
    """A callback failed verification; ``reason`` is a short machine-readable cause.

    Reasons: ``no_key``, ``missing_header``, ``bad_timestamp``, ``stale``, ``future``, ``malformed_body``,
    ``bad_signature``, ``replayed``. A receiver usually answers 401 (or 400 for a malformed body);
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

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


#: The replay cache :func:`verify_webhook` uses unless given another (or ``None`` to turn it off).
DEFAULT_REPLAY_CACHE = ReplayCache()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _too_deep(text: str, limit: int = MAX_CALLBACK_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays and objects deeper than ``limit`` (checked before parsing).

    One pass over the text, each character looked at once: brackets inside strings do not count, and
    an unterminated string or a run of escapes costs no more than any other text of the same length.
    """
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _decode_json(body: Any) -> Any:
    """Decode a raw body, refusing oversized or too deeply nested ones before the parser sees them."""
    if isinstance(body, Mapping):
        return body
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if isinstance(body, bytes):
        if len(body) > MAX_CALLBACK_BODY_BYTES:
            raise ValueError(f"Callback body is larger than {MAX_CALLBACK_BODY_BYTES} bytes")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("Callback body is not UTF-8") from None
    if not isinstance(body, str):
        raise ValueError(f"Callback body must be bytes, text or a mapping, not {type(body).__name__}")
    if len(body) > MAX_CALLBACK_BODY_BYTES:
        raise ValueError(f"Callback body is larger than {MAX_CALLBACK_BODY_BYTES} bytes")
    if _too_deep(body):
        raise ValueError(f"Callback body nests deeper than {MAX_CALLBACK_DEPTH} levels")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; so is an over-long integer
        raise ValueError(f"Callback body is not valid JSON: {type(err).__name__}") from None


def _signed_task_id(payload: Any) -> str:
    """The task id a callback names, the only signed field.

    Aleph's top-level ``taskId``, else Runway's ``data.task_id`` (or ``data.taskId``).
    """
    if not isinstance(payload, Mapping):
        raise ValueError("Callback body is not a JSON object")
    if "taskId" in payload:
        task_id = payload["taskId"]
    else:
        data = payload.get("data")
        data = data if isinstance(data, Mapping) else {}
        task_id = data.get("task_id") or data.get("taskId")
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError("Callback body carries no task id")
    task_id = task_id.strip()
    if len(task_id) > MAX_CALLBACK_TASK_ID_LENGTH or any(c.isspace() or not c.isprintable() for c in task_id):
        raise ValueError("Callback task id is not a task id")
    return task_id


def _parse(payload: Any, task_id: str) -> RunwayTask:
    try:
        task = parse_callback(payload)
    except (ValueError, TypeError, AttributeError, RecursionError) as err:
        raise ValueError(f"Callback body rejected: {type(err).__name__}: {str(err)[:200]}") from None
    if task.task_id != task_id:
        raise ValueError("Callback body names two task ids")
    return task


def parse_callback_body(body: bytes | str | Mapping[str, Any]) -> RunwayTask:
    """Normalise a callback body of either family (raw bytes, text or decoded JSON).

    Nothing here is verified: use :func:`verify_webhook` for callbacks from the network.
    Raises :class:`ValueError` for any body that is not a callback (not JSON, too large, too deeply
    nested, no task id), never anything else.
    """
    payload = _decode_json(body)
    return _parse(payload, _signed_task_id(payload))


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any],
    key: str,
    *,
    family: str | TaskFamily | None = None,
    max_skew: float = DEFAULT_MAX_SKEW,
    now: float | None = None,
    replay_cache: ReplayCache | None = DEFAULT_REPLAY_CACHE,
) -> RunwayTask:
    """Verify a signed KIE callback and return its normalised task.

    Checks, in order, each before the next: both headers are present, the timestamp is unix seconds
    within ``max_skew`` seconds of ``now`` (default: the current time) in either direction, the body
    is JSON of bounded size and depth naming a task id, the signature of that id and timestamp
    matches (constant-time), and this id and timestamp were not accepted before. Only then is the
    rest of the body read.

    Replay protection is on by default (a process-wide :data:`DEFAULT_REPLAY_CACHE`); pass your own
    cache (e.g. a shared store for several processes), or ``None`` to turn it off.

    The signature covers only the task id and the timestamp: the state, messages, URLs and the body's
    shape are unsigned hints. Read the task from the API (``RunwayHook.get_task``) before trusting
    them, with the family of the operator that asked for the callback.

    :param family: the family of the operator that set this callback URL; the returned task carries it
        instead of the family the body's shape suggests.
    :raises WebhookVerificationError: with ``reason`` set; the message never contains the key.
    """
    if not key:
        raise WebhookVerificationError("no_key", "No webhook HMAC key is configured; cannot verify the callback")
    task_family = None if family is None else TaskFamily.coerce(family)
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    missing = [name for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, timestamp)) if not value]
    if signature is None or timestamp is None:
        raise WebhookVerificationError("missing_header", f"Callback is missing header(s): {', '.join(missing)}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookVerificationError("bad_timestamp", f"{TIMESTAMP_HEADER} is not unix seconds: {timestamp[:40]!r}")
    sent_at = int(timestamp)
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
    try:
        payload = _decode_json(body)
        task_id = _signed_task_id(payload)
    except ValueError as err:
        raise WebhookVerificationError("malformed_body", f"Callback body rejected: {err}") from None
    if not signature_matches(key, task_id, timestamp, signature):
        raise WebhookVerificationError("bad_signature", f"{SIGNATURE_HEADER} does not match for task {task_id!r}")
    if replay_cache is not None and not replay_cache.check_and_add(task_id, timestamp, current):
        raise WebhookVerificationError("replayed", f"Callback for task {task_id!r} at {timestamp} was already accepted")
    try:
        task = _parse(payload, task_id)
    except ValueError as err:
        raise WebhookVerificationError("malformed_body", str(err)) from None
    return task if task_family is None else replace(task, family=task_family)


def plain_http_callback_warning(callback_url: Any) -> str | None:
    """A warning to log when ``callback_url`` is plain http, else ``None``.

    Over http the callback, its signature and the task id travel in clear and can be read or replayed
    (within the skew) by anyone on the path; use https for any receiver that is not on this machine.
    """
    if not isinstance(callback_url, str):
        return None
    try:
        parts = urlsplit(callback_url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() != "http":
        return None
    return (
        f"callback_url uses plain http (host {host or '?'}): KIE's callback and its signature travel "
        "unencrypted; use an https URL"
    )
