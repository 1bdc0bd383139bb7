"""One exception hierarchy for everything that can go wrong talking to KIE's Runway API.

The effective error code of a response is the body ``code`` when the body carries one, else the
HTTP status: KIE sends business errors both ways (HTTP 200 with ``code`` 402 in the body, or an
HTTP 402), so clients must accept both.
"""

from __future__ import annotations

import json
import re
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

    #: Codes this class stands for; used by :func:`error_class_for_code`.
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
    """401: the API key is missing or invalid, or KIE refuses the caller's IP address.

    KIE answers "You do not have access permissions" both to a missing or wrong key and to a request
    from an IP address outside the key's whitelist; that answer gets a hint naming both.
    """

    codes = (401,)

    def __init__(self, message: str, **kwargs: Any) -> None:
        shown = f"{message}{ACCESS_REFUSED_HINT}" if is_access_refused_message(message) else message
        super().__init__(shown, **kwargs)
        self.remote_message = message


class RunwayInsufficientCreditsError(RunwayApiError):
    """402: the account has too few credits for this generation."""

    codes = (402,)


class RunwayRequestRejectedError(RunwayApiError):
    """400, 422, 451, 505: the request or its content was refused; retrying cannot help."""

    codes: tuple[int, ...] = (400, 422, 451, 505)


class RunwayConcurrencyLimitError(RunwayRequestRejectedError):
    """400 "Reached the limit for concurrent generations": every generation slot of the account is busy.

    KIE created nothing and charged nothing, so creating the task again once a slot frees up is safe;
    hence ``retryable``. Chosen by :func:`error_class_for_code` from the message, not the code.
    """

    codes = ()
    retryable = True


class RunwayBadInputError(RunwayRequestRejectedError):
    """KIE refused an input it cannot use ("Incorrect image format.", "Unsupported width or height...").

    The same input fails the same way every time, so it is never retried; the message is KIE's.
    Chosen by :func:`error_class_for_code` from the message, not the code.
    """

    codes = ()


class RunwayNotExtendableError(RunwayRequestRejectedError):
    """KIE refuses to extend the source video ("Video generated after 1080P cannot be extended")."""

    codes = ()

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(f"{message}; KIE extends only videos generated at 720p", **kwargs)
        self.remote_message = message


class RunwayFeatureUnavailableError(RunwayRequestRejectedError):
    """An Aleph endpoint answered that Aleph is not available: 404 or 505 on create, or a body saying so.

    KIE lists Runway Aleph as discontinued; where it is not served, creating again cannot help.
    """

    codes = ()

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(f"Runway Aleph is not served for this account by KIE.ai (KIE answered: {message})", **kwargs)
        self.remote_message = message


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


class RunwayUsageCapError(RunwayApiError):
    """429 meaning the API key reached one of its usage caps (hourly, daily or total), not the rate limit.

    KIE lets an account cap each key's usage per hour, per day and in total. Unlike the rate limit of
    a few seconds, such a cap lasts until its period ends or someone raises it in KIE's dashboard, so
    it is not retried: the task fails at once with a message naming the cap. ``cap`` is ``"hourly"``,
    ``"daily"``, ``"total"`` or ``"usage"`` (KIE's message named no period).
    """

    codes = ()

    def __init__(self, message: str, **kwargs: Any) -> None:
        self.cap = usage_cap_period(message) or "usage"
        named = "usage cap" if self.cap == "usage" else f"{self.cap} usage cap"
        super().__init__(
            f"{message} (the API key's {named} is reached: KIE refuses its requests until the cap resets "
            "or is raised at https://kie.ai/api-key; not retried)",
            **kwargs,
        )
        self.remote_message = message


class RunwayUnavailableError(RunwayApiError):
    """455 (maintenance), 408 (upstream silent for over 10 minutes) or another 5xx: a transient failure.

    Like a 5xx, a 408 on a create leaves open whether a task was created.
    """

    codes = (408, 455, 500, 502, 503, 504)
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


#: Path prefix of the Aleph endpoints, whose "not available" answers mean Aleph is not served.
ALEPH_PATH_PREFIX = "/api/v1/aleph/"
#: KIE's words when it cannot take a generation now: the account's concurrency limit, and the capacity
#: message free accounts get ("Please try again later. You can upgrade to Standard membership ...").
_CAPACITY = re.compile(
    r"limit for concurrent generation|upgrade to (?:a |the )?\w+ membership to start generating", re.IGNORECASE
)
#: KIE's words for an input it cannot use: the same input fails the same way again.
_BAD_INPUT = re.compile(r"incorrect image format|unsupported (?:image )?(?:width|height)", re.IGNORECASE)
#: A 429 is a usage cap, not the rate limit, when its message names a cap's period or a quota, with words
#: of a limit being reached; KIE documents the caps (hourly, daily, total) but not their wording.
_CAP_PERIOD = re.compile(r"\b(?:(hourly|per[ -]hour)|(daily|per[ -]day)|(total))\b", re.IGNORECASE)
_CAP_OTHER = re.compile(r"\b(?:quota|usage)\b", re.IGNORECASE)
_CAP_REACHED = re.compile(r"\b(?:limits?|caps?|quota|reached|exceeded|exhausted|used up|maximum)\b", re.IGNORECASE)
#: KIE's 401 for a missing or wrong key and for an IP address outside the key's whitelist.
_ACCESS_REFUSED = re.compile(r"access permission|whitelist", re.IGNORECASE)
ACCESS_REFUSED_HINT = (
    "; check the API key, and the key's IP whitelist in KIE's dashboard (https://kie.ai/api-key): "
    "KIE answers this to a request from an IP address the key does not allow"
)
_NOT_EXTENDABLE = re.compile(r"cannot be extended", re.IGNORECASE)
_NOT_AVAILABLE = re.compile(
    r"discontinued|no longer (?:available|supported|served)"
    r"|\b(?:model|aleph|feature)\b[^.]*?\b(?:not (?:available|served|exist|found)|does not exist|disabled"
    r"|offline|gone|removed|retired)",
    re.IGNORECASE,
)
#: Wording a transient outage may use that must not read as "Aleph is gone".
_TEMPORARY = re.compile(r"temporar|maintenance|try again|busy", re.IGNORECASE)


def is_capacity_message(message: str | None) -> bool:
    """Whether ``message`` says KIE cannot take a generation now, having created and charged nothing.

    KIE's "Reached the limit for concurrent generations", and "Please try again later. You can upgrade
    to Standard membership to start generating now." (free accounts).
    """
    return bool(message and _CAPACITY.search(message))


#: The earlier name of :func:`is_capacity_message`.
is_concurrency_limit_message = is_capacity_message


def is_bad_input_message(message: str | None) -> bool:
    """Whether ``message`` is KIE's refusal of an input ("Incorrect image format.", "Unsupported width or height")."""
    return bool(message and _BAD_INPUT.search(message))


def usage_cap_period(message: str | None) -> str | None:
    """The cap a 429's ``message`` says is reached (``hourly``, ``daily``, ``total``, ``usage``); ``None`` if none.

    ``None`` means the message reads as the ordinary rate limit ("Too many requests"), which is retried.
    """
    if not message or not _CAP_REACHED.search(message):
        return None
    period = _CAP_PERIOD.search(message)
    if period is not None:
        return ("hourly", "daily", "total")[(period.lastindex or 1) - 1]
    return "usage" if _CAP_OTHER.search(message) else None


def is_access_refused_message(message: str | None) -> bool:
    """Whether ``message`` is KIE's 401 "You do not have access permissions" (key, or IP whitelist)."""
    return bool(message and _ACCESS_REFUSED.search(message))


def is_not_extendable_message(message: str | None) -> bool:
    """Whether ``message`` is KIE's refusal to extend a source ("... cannot be extended")."""
    return bool(message and _NOT_EXTENDABLE.search(message))


def is_not_available_message(message: str | None) -> bool:
    """Whether ``message`` says a model or feature is gone ("discontinued", "model not found", ...)."""
    return bool(message and _NOT_AVAILABLE.search(message) and not _TEMPORARY.search(message))


def error_class_for_code(code: int, message: str = "", path: str = "") -> type[RunwayApiError]:
    """Map an effective error code, with the API's message and the request path, to its exception class.

    The message picks the classes KIE gives no code of their own: no capacity now (the concurrency
    limit, or the free accounts' "try again later"), an input KIE cannot use, a usage cap reached (a
    429 that is not the rate limit), a refused extension, and (on an Aleph path) Aleph not being
    served, which a 404 or 505 from Aleph's create endpoint also means. On a status read (a path with
    ``/record``) a 5xx keeps its code's class: the task, not the read, is what failed there.
    """
    worded = code in (400, 422) or (code in (500, 501) and "/record" not in path)
    if worded and is_capacity_message(message):
        return RunwayConcurrencyLimitError
    if worded and is_bad_input_message(message):
        return RunwayBadInputError
    if code == 429 and usage_cap_period(message) is not None:
        return RunwayUsageCapError
    if code in (400, 422, 501) and is_not_extendable_message(message):
        return RunwayNotExtendableError
    if path.startswith(ALEPH_PATH_PREFIX) and code not in (408, 429, 455):
        on_create = not path.startswith(ALEPH_PATH_PREFIX + "record")
        if (on_create and code in (404, 505)) or is_not_available_message(message):
            return RunwayFeatureUnavailableError
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
    cls = error_class_for_code(effective, message, path)
    kwargs: dict[str, Any] = {"code": effective, "http_status": http_status, "method": method, "path": path}
    if cls is RunwayRateLimitedError:
        return_after = parse_retry_after(retry_after)
        raise RunwayRateLimitedError(truncate(message), retry_after=return_after, **kwargs)
    raise cls(truncate(message), **kwargs)
