"""Webhook signatures as KIE documents them.

``X-Webhook-Signature`` = base64(HMAC-SHA256(key, taskId + "." + timestamp)) and
``X-Webhook-Timestamp`` = unix seconds. The signature covers the task id and the timestamp only,
not the rest of the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

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
