"""One exception hierarchy for everything that can go wrong talking to KIE's Runway API.

The effective error code of a response is the body ``code`` when the body carries one, else the
HTTP status: KIE sends business errors both ways (HTTP 200 with ``code`` 402 in the body, or an
HTTP 402), so clients must accept both.
"""

from __future__ import annotations

import json
from typing import Any

#: Longest slice of a remote body quoted in an exception message or a log line.
MAX_QUOTED_BODY = 300
#: Largest error body read into memory; anything longer is cut before parsing.
MAX_ERROR_BODY_BYTES = 64 * 1024


def truncate(text: str, limit: int = MAX_QUOTED_BODY) -> str:
    """Shorten ``text`` for messages, marking the cut."""
    text = text.replace("\n", " ").strip()
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more chars]"


class RunwayError(Exception):
    """Base class of every error raised by this provider."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunwayParameterError(RunwayError, ValueError):
    """A request parameter is invalid; raised locally, before any HTTP call is made."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = truncate(repr(value), 80)
        super().__init__(f"Invalid {field}={shown}: {allowed}")


class RunwayApiError(RunwayError):
    """The API answered with an error code (in the HTTP status or in the body ``code``)."""

    #: Codes this class stands for; used by :func:`error_for_code`.
    codes: tuple[int, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method or path else ""
        shown_code = f"[{code}] " if code is not None else ""
        super().__init__(f"{shown_code}{message}{where}")
        self.remote_message = message


class RunwayAuthError(RunwayApiError):
    """401: the API key is missing or invalid."""

    codes = (401,)


class RunwayInsufficientCreditsError(RunwayApiError):
    """402: the account has too few credits for this generation."""

    codes = (402,)


class RunwayRequestRejectedError(RunwayApiError):
    """400, 422, 451, 505: the request or its content was refused; retrying cannot help."""

    codes = (400, 422, 451, 505)


class RunwayNotFoundError(RunwayApiError):
    """404: no task with this id (for this account)."""

    codes = (404,)


class RunwayGenerationError(RunwayApiError):
    """501: the generation failed on the server."""

    codes = (501,)


class RunwayRateLimitedError(RunwayApiError):
    """429: too many requests; retry after ``retry_after`` seconds when the server says so."""

    codes = (429,)
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RunwayUnavailableError(RunwayApiError):
    """455 (maintenance) or another 5xx: the service is temporarily unavailable."""

    codes = (455, 500, 502, 503, 504)
    retryable = True


class RunwayProtocolError(RunwayError):
    """The response was not the JSON envelope the API documents (HTML page, bad JSON, no data)."""

    retryable = True


class RunwayTransportError(RunwayError):
    """The request did not complete: connection refused or dropped, or a timeout.

    ``request_sent`` tells whether the server may have received the request body. A create that
    failed after sending must not be retried blindly: a task may exist and cost credits.
    """

    retryable = True

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class RunwayCreateUncertainError(RunwayError):
    """A create request was sent but its outcome is unknown; it is not retried automatically."""


class RunwayTaskFailedError(RunwayError):
    """The remote generation task ended in failure."""

    def __init__(self, task_id: str, fail_code: str | None, fail_message: str | None) -> None:
        self.task_id = task_id
        self.fail_code = fail_code
        self.fail_message = fail_message
        super().__init__(
            f"Runway task {task_id} failed (fail code {fail_code or 'none'}): {fail_message or 'no reason given'}"
        )


class RunwayTaskTimeoutError(RunwayError):
    """A task did not finish before the deadline."""


class RunwayResultExpiredError(RunwayError):
    """The task's files were deleted by KIE (kept 14 days); the result cannot be fetched."""


_CLASSES: tuple[type[RunwayApiError], ...] = (
    RunwayAuthError,
    RunwayInsufficientCreditsError,
    RunwayRequestRejectedError,
    RunwayNotFoundError,
    RunwayGenerationError,
    RunwayRateLimitedError,
    RunwayUnavailableError,
)


def error_class_for_code(code: int) -> type[RunwayApiError]:
    """Map an effective error code to its exception class."""
    for cls in _CLASSES:
        if code in cls.codes:
            return cls
    if code >= 500:
        return RunwayUnavailableError
    return RunwayRequestRejectedError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` when absent or odd."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, min(seconds, 3600.0))


def _decode_body(body: bytes | str | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body[:MAX_ERROR_BODY_BYTES].decode("utf-8", errors="replace")
    return body[:MAX_ERROR_BODY_BYTES]


def parse_envelope(
    http_status: int,
    body: bytes | str | None,
    *,
    retry_after: str | None = None,
    method: str = "",
    path: str = "",
) -> Any:
    """Check a response and return its ``data``; raise the matching :class:`RunwayError` otherwise.

    Works for both error styles: an HTTP error status, or HTTP 200 with an error ``code`` in the
    body. A body that is not the documented JSON envelope raises :class:`RunwayProtocolError`
    (or the HTTP status's error class when the status itself is an error).
    """
    text = _decode_body(body)
    payload: Any = None
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    body_code = payload.get("code") if isinstance(payload, dict) else None
    if isinstance(body_code, str) and body_code.strip().isdigit():
        body_code = int(body_code)
    if not isinstance(body_code, int) or isinstance(body_code, bool):
        body_code = None
    effective = body_code if body_code is not None else http_status
    if effective == 200 and http_status < 400:
        if not isinstance(payload, dict):
            raise RunwayProtocolError(
                f"Expected a JSON envelope from {method} {path}, got: {truncate(text) or '<empty>'}"
            )
        return payload.get("data")
    if body_code == 200 and http_status >= 400:
        effective = http_status
    message = payload.get("msg") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message:
        message = truncate(text) if text else f"HTTP {http_status}"
    cls = error_class_for_code(effective)
    kwargs: dict[str, Any] = {"code": effective, "http_status": http_status, "method": method, "path": path}
    if cls is RunwayRateLimitedError:
        return_after = parse_retry_after(retry_after)
        raise RunwayRateLimitedError(truncate(message), retry_after=return_after, **kwargs)
    raise cls(truncate(message), **kwargs)
