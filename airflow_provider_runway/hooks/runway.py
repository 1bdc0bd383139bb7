"""Hook for KIE.ai's Runway video API (Gen-3 generate, extend, Aleph)."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

import aiohttp
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import (
    MAX_ERROR_BODY_BYTES,
    RunwayAuthError,
    RunwayCreateUncertainError,
    RunwayError,
    RunwayParameterError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayTransportError,
    RunwayUnavailableError,
    parse_envelope,
    truncate,
)
from airflow_provider_runway.core.models import (
    AlephRequest,
    CreateRequest,
    ExtendRequest,
    GenerateRequest,
    ValidationLimits,
    check_task_id,
    is_http_url,
    is_task_id,
    redact_url,
)
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, parse_record
from airflow_provider_runway.core.wait import WaitDecision, WaitPolicy, wait_sync
from airflow_provider_runway.core.wire import (
    ALEPH_GENERATE_PATH,
    CREDIT_PATH,
    DEFAULT_BASE_URL,
    DOWNLOAD_URL_PATH,
    RUNWAY_EXTEND_PATH,
    RUNWAY_GENERATE_PATH,
    STATUS_PATHS,
    created_task_id,
    status_path,
)

USER_AGENT = f"airflow-provider-runway/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_RETRY_LIMIT = 5
DEFAULT_RETRY_DELAY = 1.0
#: Longest exponential back-off step between two retries, in seconds.
MAX_BACKOFF = 60.0
#: Longest ``Retry-After`` honoured, in seconds; a longer one is shortened to this.
MAX_RETRY_AFTER = 300.0
#: Largest successful response body read; KIE's envelopes are a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024
#: Code KIE uses for planned maintenance: nothing was created, so a create may be retried.
MAINTENANCE_CODE = 455

_TRUE = ("1", "true", "yes", "on")
LEGACY_EXTRA_PREFIX = "extra__runway__"
#: Extra holding the key KIE signs callbacks with; "secret" is among the names Airflow masks.
WEBHOOK_SECRET_EXTRA = "webhook_secret"
#: The extra's earlier name, still read; Airflow's connection API and UI show it in clear.
LEGACY_WEBHOOK_KEY_EXTRA = "webhook_hmac_key"
#: ``Bearer <token>`` in any text, e.g. a header value quoted in an exception.
_BEARER_TOKEN = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")


def clean_api_key(password: Any, conn_id: str) -> str:
    """The API key of a connection's password: surrounding whitespace removed, then checked.

    File-mounted secrets often end in a newline, which would make every request fail with the key
    quoted in the error. A key with whitespace, control or non-ASCII characters inside is refused
    with a message that does not contain it.
    """
    key = str(password).strip() if password is not None else ""
    if not key:
        raise RunwayAuthError(f"The Runway connection {conn_id!r} has no API key: put the key in its password field")
    if any(not 0x21 <= ord(char) <= 0x7E for char in key):
        raise RunwayAuthError(
            f"The API key of the Runway connection {conn_id!r} contains whitespace, control or non-ASCII "
            "characters; paste the key again (it is not shown here)"
        )
    return key


def redact_key(text: str, key: str) -> str:
    """``text`` without ``key`` in any form a message may quote it in (plain, escaped, URL-encoded, Bearer)."""
    if key:
        forms = {
            key,
            repr(key)[1:-1],
            repr(key.encode())[2:-1],
            json.dumps(key)[1:-1],
            quote(key, safe=""),
            quote_plus(key),
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
    return _BEARER_TOKEN.sub(r"\1***", text)


def backoff_delay(attempt: int, delay: float, retry_after: float | None = None, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Exponential (``delay * 2**(attempt-1)``, at most ``cap``) with equal jitter, so a crowd of
    clients does not retry in lock step; never shorter than the server's ``Retry-After``.
    """
    base = min(cap, max(0.0, delay) * 2 ** max(0, attempt - 1))
    wait = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return wait


class _BackoffWait(tenacity.wait.wait_base):
    """Tenacity wait strategy applying :func:`backoff_delay` and the error's ``retry_after``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = error.retry_after if isinstance(error, RunwayRateLimitedError) else None
        return backoff_delay(retry_state.attempt_number, self.delay, retry_after)


def _read_may_retry(error: BaseException) -> bool:
    return isinstance(error, RunwayError) and error.retryable


def _create_may_retry(error: BaseException) -> bool:
    """Only where the server cannot have created a task: 429, 455, or a request never sent."""
    if isinstance(error, RunwayRateLimitedError):
        return True
    if isinstance(error, RunwayUnavailableError):
        return error.code == MAINTENANCE_CODE
    if isinstance(error, RunwayTransportError):
        return not error.request_sent
    return False


def _create_outcome_unknown(error: BaseException) -> bool:
    """A create failed in a way that leaves open whether the server created (and charged) a task."""
    if isinstance(error, RunwayUnavailableError):
        return error.code != MAINTENANCE_CODE
    if isinstance(error, RunwayTransportError):
        return error.request_sent
    return isinstance(error, RunwayProtocolError)


def _as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _as_float(extra: Mapping[str, Any], key: str, default: float) -> float:
    value = extra.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Runway connection extra {key}={value!r} must be a number") from None
    if number < 0:
        raise ValueError(f"Runway connection extra {key}={value!r} must not be negative")
    return number


def _plain_extra(extra: Any) -> dict[str, Any]:
    """The connection extra as a dict, accepting Airflow 2's ``extra__runway__<name>`` form-field keys."""
    if not isinstance(extra, Mapping):
        return {}
    plain = {str(key).removeprefix(LEGACY_EXTRA_PREFIX): value for key, value in extra.items()}
    # An explicit plain key wins over a legacy prefixed one.
    plain.update({key: value for key, value in extra.items() if not str(key).startswith(LEGACY_EXTRA_PREFIX)})
    return plain


def build_base_url(host: str | None, port: int | None, extra: Mapping[str, Any]) -> str:
    """The API base URL from a connection's host, port and ``use_https`` extra."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = "https" if _as_bool(extra.get("use_https"), default=True) else "http"
        host = f"{scheme}://{host}"
    scheme, _, rest = host.partition("://")
    if scheme.lower() not in ("http", "https") or not rest:
        raise ValueError(f"Runway connection host {host!r} must be an http(s) URL such as {DEFAULT_BASE_URL}")
    netloc = rest.split("/", 1)[0]
    if port and ":" not in netloc.rsplit("]", 1)[-1]:
        host = host.replace(netloc, f"{netloc}:{port}", 1)
    return host


class _BearerAuth(AuthBase):
    """Sets the ``Authorization: Bearer`` and ``User-Agent`` headers; its repr never shows the key."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        request.headers["User-Agent"] = USER_AGENT
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(api_key=***)"


@dataclass(frozen=True)
class _Settings:
    """What the hook needs from its connection; the key and the extra stay out of the repr."""

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float
    read_timeout: float
    retry_limit: int
    retry_delay: float
    extra: Mapping[str, Any] = field(repr=False)


class _Response(NamedTuple):
    status: int
    body: bytes
    retry_after: str | None
    elapsed_ms: float


def _request_never_sent(error: requests.RequestException) -> bool:
    """Whether ``requests`` failed before the request could reach the server."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _aiohttp_never_sent(error: BaseException) -> bool:
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None and isinstance(error, connect_timeout):
        return True
    return isinstance(error, aiohttp.ClientConnectorError)


_ConnectionFields = tuple[Any, Any, Any, Any]  # host, port, password, extra
#: How long an event loop reuses a connection it read, so a burst of waits reads it once.
CONNECTION_REUSE_SECONDS = 30.0
#: Most sockets a shared session opens to the API; more concurrent requests queue for one.
MAX_CONNECTIONS = 200


def _new_client_session(settings: _Settings) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {settings.api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        ),
    )


class _LoopShared:
    """What the hooks running on one event loop share: recent connection reads and sessions."""

    def __init__(self) -> None:
        self._connections: dict[str, tuple[float, _ConnectionFields]] = {}
        self._reading: dict[str, asyncio.Future[_ConnectionFields]] = {}
        self._sessions: dict[tuple[Any, ...], list[Any]] = {}  # key -> [session, users]

    async def connection(self, conn_id: str, read: Callable[[], Awaitable[_ConnectionFields]]) -> _ConnectionFields:
        """The connection's fields: a recent read, else one read shared by every concurrent caller."""
        entry = self._connections.get(conn_id)
        if entry is not None and time.monotonic() - entry[0] <= CONNECTION_REUSE_SECONDS:
            return entry[1]
        reading = self._reading.get(conn_id)
        if reading is None:
            # A burst of waits starting together would otherwise each read the connection.
            reading = self._reading[conn_id] = asyncio.ensure_future(self._read(conn_id, read))
            reading.add_done_callback(lambda done: self._read_done(conn_id, done))
        return await asyncio.shield(reading)

    async def _read(self, conn_id: str, read: Callable[[], Awaitable[_ConnectionFields]]) -> _ConnectionFields:
        fields = await read()
        if fields[2]:  # a connection without a key is not kept: once fixed, the next wait sees the fix
            self._connections[conn_id] = (time.monotonic(), fields)
        return fields

    def _read_done(self, conn_id: str, done: asyncio.Future[_ConnectionFields]) -> None:
        if self._reading.get(conn_id) is done:
            del self._reading[conn_id]
        if not done.cancelled():
            done.exception()  # retrieved, so a failure every caller already saw is not reported again

    def acquire_session(
        self, key: tuple[Any, ...], factory: Callable[[], aiohttp.ClientSession]
    ) -> aiohttp.ClientSession:
        entry = self._sessions.get(key)
        if entry is None or entry[0].closed:
            entry = self._sessions[key] = [factory(), 0]
        entry[1] += 1
        return entry[0]  # type: ignore[no-any-return]

    async def release_session(self, key: tuple[Any, ...]) -> None:
        entry = self._sessions.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._sessions[key]
            await entry[0].close()


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShared] = weakref.WeakKeyDictionary()


def _loop_shared() -> _LoopShared:
    loop = asyncio.get_running_loop()
    try:
        shared = _SHARED.get(loop)
        if shared is None:
            shared = _SHARED[loop] = _LoopShared()
    except TypeError:  # an event loop type without weak references: share nothing
        return _LoopShared()
    return shared


class RunwayHook(HttpHook):
    """
    Interact with KIE.ai's Runway API: create generate, extend and Aleph tasks and read their status.

    The connection (type ``runway``) holds the API key in ``password`` and the base URL in ``host``
    (empty means ``https://api.kie.ai``). Optional ``extra`` keys: ``connect_timeout`` and
    ``read_timeout`` (seconds), ``retry_limit``, ``retry_delay``, ``webhook_secret``,
    ``max_prompt_length``, ``allowed_durations``, ``use_https`` and ``download_allowed_hosts``
    (file hosts that downloads may reach on internal addresses).

    The scheme comes from the host when it has one (``http://127.0.0.1:8089``). A host without a
    scheme uses https unless the extra says ``use_https=false``, which is how the URI form of a
    connection reaches a plain-http server such as the bundled simulator::

        AIRFLOW_CONN_RUNWAY_DEFAULT='runway://:API_KEY@127.0.0.1:8089/?use_https=false'
        AIRFLOW_CONN_RUNWAY_DEFAULT='{"conn_type": "runway", "host": "http://127.0.0.1:8089", "password": "API_KEY"}'

    (A percent-encoded host such as ``runway://:API_KEY@http%3A%2F%2F127.0.0.1%3A8089`` works too.)

    Every call sends ``Authorization: Bearer <key>`` and ``User-Agent: airflow-provider-runway/<version>``.
    Retryable errors (429 honouring ``Retry-After``, 455, 5xx, timeouts, dropped connections, malformed
    bodies) are retried with exponential back-off and jitter, up to ``retry_limit`` retries. Creating a
    task is not idempotent on KIE's side, so a create is retried only when no task can have been created
    (429, 455, connection refused, connect timeout); after a 5xx, a read timeout or a dropped connection
    it raises :class:`~airflow_provider_runway.core.errors.RunwayCreateUncertainError` instead of paying twice.
    The key never appears in logs, exceptions or reprs.

    For triggers, ``async with hook:`` reads the connection through Airflow's async API and holds one
    aiohttp session for the whole wait; :meth:`aget_task` reuses it. Hooks on the same event loop
    with the same settings share that session (and a connection read within the last 30 seconds),
    so a triggerer with thousands of waits keeps a small pool of sockets instead of one per wait.

    :param runway_conn_id: The Runway connection to use.
    :param retry_limit: Retries after the first attempt of a retryable call. When left at the default,
        the connection's ``retry_limit`` extra applies if set.
    :param retry_delay: Base of the exponential back-off, in seconds. When left at the default, the
        connection's ``retry_delay`` extra applies if set.
    :param timeout: Read timeout in seconds, overriding the connection's ``read_timeout`` extra.
    :param kwargs: Passed to :class:`~airflow.providers.http.hooks.http.HttpHook` (e.g. ``tcp_keep_alive``).
    """

    conn_name_attr = "runway_conn_id"
    default_conn_name = "runway_default"
    conn_type = "runway"
    hook_name = "Runway (KIE.ai)"

    def __init__(
        self,
        runway_conn_id: str = default_conn_name,
        *,
        retry_limit: int = DEFAULT_RETRY_LIMIT,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._base_url_override: str | None = None
        super().__init__(method="GET", http_conn_id=runway_conn_id, auth_type=_BearerAuth, **kwargs)
        if retry_limit < 0:
            raise ValueError(f"retry_limit must be 0 or more, got {retry_limit}")
        if retry_delay < 0:
            raise ValueError(f"retry_delay must not be negative, got {retry_delay}")
        self.runway_conn_id = runway_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.timeout = timeout
        self._settings_cache: _Settings | None = None
        self._requests_session: requests.Session | None = None
        self._asession: aiohttp.ClientSession | None = None
        self._asession_depth = 0
        self._session_key: tuple[Any, ...] = ()
        self._shared: _LoopShared | None = None
        self._checked_task_ids: set[str] = set()
        # Injection points for tests; tenacity looks them up at each retry.
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # ----------------------------------------------------------------- connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the password as the API key and hide the fields Runway does not use."""
        return {
            "hidden_fields": ["schema", "login", "port"],
            "relabeling": {"password": "API Key", "host": "Base URL"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "password": "KIE.ai API key",
                "extra": (
                    '{"connect_timeout": 10, "read_timeout": 30, "retry_limit": 5, "retry_delay": 1, '
                    '"webhook_secret": "...", "max_prompt_length": 1800, "allowed_durations": [5, 8, 10]}'
                ),
            },
        }

    # ----------------------------------------------------------------- settings

    def _settings_from(self, host: str | None, port: int | None, password: str | None, extra: Any) -> _Settings:
        extra = _plain_extra(extra)
        api_key = clean_api_key(password, self.runway_conn_id)
        if api_key != password:
            _mask(api_key)  # Airflow masks the password as stored, not the key without its newline
        retry_limit = self.retry_limit
        if retry_limit == DEFAULT_RETRY_LIMIT and extra.get("retry_limit") not in (None, ""):
            retry_limit = int(_as_float(extra, "retry_limit", DEFAULT_RETRY_LIMIT))
        retry_delay = self.retry_delay
        if retry_delay == DEFAULT_RETRY_DELAY:
            retry_delay = _as_float(extra, "retry_delay", DEFAULT_RETRY_DELAY)
        read_timeout = self.timeout if self.timeout is not None else _as_float(extra, "read_timeout", 0)
        return _Settings(
            base_url=build_base_url(host, port, extra),
            api_key=api_key,
            connect_timeout=_as_float(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT) or DEFAULT_CONNECT_TIMEOUT,
            read_timeout=read_timeout or DEFAULT_READ_TIMEOUT,
            retry_limit=retry_limit,
            retry_delay=retry_delay,
            extra=extra,
        )

    def _settings(self) -> _Settings:
        if self._settings_cache is None:
            conn = self.get_connection(self.runway_conn_id)
            self._settings_cache = self._settings_from(conn.host, conn.port, conn.password, conn.extra_dejson)
        return self._settings_cache

    async def _asettings(self) -> _Settings:
        if self._settings_cache is None:
            fields = await _loop_shared().connection(self.runway_conn_id, self._aread_connection)
            self._settings_cache = self._settings_from(*fields)
        return self._settings_cache

    async def _aread_connection(self) -> _ConnectionFields:
        try:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
        except ImportError:  # an older common-compat provider
            conn = await self.aget_connection(self.runway_conn_id)
            extra = conn.extra_dejson
        else:
            conn = await get_async_connection(self.runway_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
        return conn.host, conn.port, conn.password, extra

    @property  # type: ignore[override]
    def base_url(self) -> str:
        """The API base URL: the connection's host, or ``https://api.kie.ai`` when empty."""
        return self._base_url_override or self._settings().base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        # HttpHook.__init__ assigns "" here; only a real URL overrides the connection.
        self._base_url_override = value.rstrip("/") if value else None

    def get_validation_limits(self) -> ValidationLimits:
        """Prompt length and duration limits from the connection's extra (defaults otherwise)."""
        return ValidationLimits.from_extra(self._settings().extra)

    def get_webhook_hmac_key(self) -> str | None:
        """The key KIE signs callbacks with, or ``None``.

        Read from the extra ``webhook_secret``; the earlier name ``webhook_hmac_key`` is still read (with a
        warning: Airflow's connection API and UI show that name's value in clear).
        """
        extra = self._settings().extra
        key = extra.get(WEBHOOK_SECRET_EXTRA)
        if not key and extra.get(LEGACY_WEBHOOK_KEY_EXTRA):
            key = extra[LEGACY_WEBHOOK_KEY_EXTRA]
            self.log.warning(
                "Runway connection %r: rename the extra %s to %s; Airflow shows %s in clear in its UI and API",
                self.runway_conn_id,
                LEGACY_WEBHOOK_KEY_EXTRA,
                WEBHOOK_SECRET_EXTRA,
                LEGACY_WEBHOOK_KEY_EXTRA,
            )
        text = str(key).strip() if key else ""
        if not text:
            return None
        _mask(text)  # masked in logs whatever the extra's name
        return text

    # ----------------------------------------------------------------- sync transport

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A ``requests`` session with Bearer auth, the User-Agent and keep-alive adapters."""
        settings = self._settings()
        session = requests.Session()
        session.auth = _BearerAuth(settings.api_key)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if headers:
            session.headers.update(headers)
        return self._configure_session_from_mount_adapters(session)

    def _session(self) -> requests.Session:
        if self._requests_session is None:
            self._requests_session = self.get_conn()
        return self._requests_session

    def _redact(self, body: bytes) -> bytes:
        """Remove the key from a remote body in case a proxy echoes request headers back."""
        key = self._settings_cache.api_key if self._settings_cache else ""
        return body.replace(key.encode(), b"***") if key else body

    def _transport_error(
        self, method: str, path: str, error: BaseException, *, never_sent: bool
    ) -> RunwayTransportError:
        """A :class:`RunwayTransportError` for ``error`` with the key removed in every form it may take."""
        key = self._settings_cache.api_key if self._settings_cache else ""
        detail = redact_key(str(error), key)
        return RunwayTransportError(
            f"{method} {path} failed: {type(error).__name__}: {truncate(detail) or 'no detail'}",
            request_sent=not never_sent,
        )

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None) -> _Response:
        settings = self._settings()
        session = self._session()
        url = f"{self.base_url}{path}"
        started = time.monotonic()
        failure: RunwayTransportError | None = None
        try:
            with session.request(
                method,
                url,
                params=params,
                json=body,
                timeout=(settings.connect_timeout, settings.read_timeout),
                stream=True,
                allow_redirects=False,
            ) as response:
                content = self._read_capped(response)
                status, retry_after = response.status_code, response.headers.get("Retry-After")
        except Exception as error:  # requests', urllib3's and http.client's alike (a bad header is a ValueError)
            elapsed = (time.monotonic() - started) * 1000
            self.log.warning("Runway API %s %s failed after %.0f ms: %s", method, path, elapsed, type(error).__name__)
            # A ValueError (a bad header, an invalid URL) is a local refusal: nothing was sent.
            never_sent = isinstance(error, ValueError) or (
                isinstance(error, requests.RequestException) and _request_never_sent(error)
            )
            failure = self._transport_error(method, path, error, never_sent=never_sent)
        if failure is not None:
            raise failure  # raised outside the handler, so the original error (which may quote the key) is not chained
        return _Response(status, self._redact(content), retry_after, (time.monotonic() - started) * 1000)

    @staticmethod
    def _read_capped(response: requests.Response) -> bytes:
        limit = MAX_BODY_BYTES if response.status_code < 400 else MAX_ERROR_BODY_BYTES
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(16 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]

    def _check(self, method: str, path: str, response: _Response, task_id: str | None) -> Any:
        """Log one response and return the envelope's ``data``; raise the matching error otherwise."""
        where = f" [task {task_id}]" if task_id else ""
        try:
            data = parse_envelope(
                response.status, response.body, retry_after=response.retry_after, method=method, path=path
            )
        except RunwayError as error:
            self.log.warning(
                "Runway API %s %s -> HTTP %s in %.0f ms%s: %s",
                method,
                path,
                response.status,
                response.elapsed_ms,
                where,
                error,
            )
            raise
        self.log.debug(
            "Runway API %s %s -> HTTP %s in %.0f ms%s", method, path, response.status, response.elapsed_ms, where
        )
        return data

    def _retry_kwargs(self, policy: Callable[[BaseException], bool], retries: int, method: str, path: str) -> dict:
        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.log.warning(
                "Runway API %s %s: %s; retry %d of %d in %.1f s",
                method,
                path,
                error,
                state.attempt_number,
                retries,
                wait,
            )

        return {
            "stop": tenacity.stop_after_attempt(retries + 1),
            "wait": _BackoffWait(self._settings_cache.retry_delay if self._settings_cache else self.retry_delay),
            "retry": tenacity.retry_if_exception(policy),
            "before_sleep": log_retry,
            "reraise": True,
        }

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        parse: Callable[[Any], Any] = lambda data: data,
        task_id: str | None = None,
        policy: Callable[[BaseException], bool] = _read_may_retry,
        retries: int | None = None,
    ) -> Any:
        """One API call with retries; ``parse`` runs inside the retried attempt."""
        settings = self._settings()
        retries = settings.retry_limit if retries is None else retries

        def attempt() -> Any:
            return parse(self._check(method, path, self._send(method, path, params, body), task_id))

        # Fast path: most calls succeed at once, so tenacity is only set up after a failure.
        try:
            return attempt()
        except RunwayError as error:
            if retries < 1 or not policy(error):
                raise
            first_failure: list[BaseException] = [error]

        def replay_then_attempt() -> Any:
            if first_failure:  # tenacity's attempt 1 is the failure above, so its waits and logs count it
                raise first_failure.pop()
            return attempt()

        retrying = tenacity.Retrying(
            sleep=lambda seconds: self._sleep(seconds), **self._retry_kwargs(policy, retries, method, path)
        )
        return retrying(replay_then_attempt)

    # ----------------------------------------------------------------- create

    def create_task(self, request: CreateRequest) -> str:
        """Create the task ``request`` describes (generate, extend or Aleph); return its task id."""
        if isinstance(request, GenerateRequest):
            return self.create_generate_task(request)
        if isinstance(request, ExtendRequest):
            return self.create_extend_task(request)
        if isinstance(request, AlephRequest):
            return self.create_aleph_task(request)
        raise TypeError(f"Expected a GenerateRequest, ExtendRequest or AlephRequest, got {type(request).__name__}")

    def create_generate_task(self, request: GenerateRequest) -> str:
        """Start a Runway text-to-video or image-to-video generation; return the new task id."""
        return self._create(RUNWAY_GENERATE_PATH, request.to_payload())

    def create_extend_task(self, request: ExtendRequest) -> str:
        """Extend a finished Runway video; return the new task id."""
        return self._create(RUNWAY_EXTEND_PATH, request.to_payload())

    def create_aleph_task(self, request: AlephRequest) -> str:
        """Start an Aleph video-to-video edit; return the new task id."""
        return self._create(ALEPH_GENERATE_PATH, request.to_payload())

    def _create(self, path: str, payload: dict[str, Any]) -> str:
        def task_id_of(data: Any) -> str:
            task_id = created_task_id(data)
            if task_id is None:
                raise RunwayProtocolError(f"POST {path} succeeded but returned no taskId: {truncate(repr(data))}")
            if not is_task_id(task_id):  # checked like an input id: it goes into URLs, file names and logs
                raise RunwayProtocolError(f"POST {path} returned an invalid taskId: {truncate(repr(task_id))}")
            return task_id

        started = time.monotonic()
        try:
            task_id: str = self._call("POST", path, body=payload, parse=task_id_of, policy=_create_may_retry)
        except RunwayError as error:
            if _create_outcome_unknown(error):
                raise RunwayCreateUncertainError(
                    f"POST {path} was sent but its outcome is unknown ({error}). A task may have been created "
                    "(and charged); it was not retried to avoid paying twice. Check your KIE.ai task history "
                    "before creating it again."
                ) from error
            raise
        self.log.info(
            "Runway API POST %s created task %s in %.0f ms", path, task_id, (time.monotonic() - started) * 1000
        )
        return task_id

    # ----------------------------------------------------------------- reads

    def get_task(self, task_id: str, family: str | TaskFamily = "runway") -> RunwayTask:
        """Read a task's status and result, normalised across the Runway and Aleph shapes."""
        task_family = TaskFamily.coerce(family)
        check_task_id(task_id)
        path = status_path(task_family)
        return self._call(  # type: ignore[no-any-return]
            "GET",
            path,
            params={"taskId": task_id},
            parse=lambda data: self._to_task(task_family, data, task_id, path),
            task_id=task_id,
        )

    @staticmethod
    def _to_task(family: TaskFamily, data: Any, task_id: str, path: str) -> RunwayTask:
        if not isinstance(data, Mapping):
            raise RunwayProtocolError(f"GET {path} returned no task data for {task_id}: {truncate(repr(data))}")
        return parse_record(family, data, task_id)

    def get_credits(self) -> int:
        """Remaining credits of the account."""
        return self._call("GET", CREDIT_PATH, parse=_to_credits)  # type: ignore[no-any-return]

    def get_download_url(self, url: str) -> str:
        """A temporary (20 minutes) direct download link for a KIE-hosted file ``url``."""
        if not is_http_url(url):  # the message names the host and path only: signed links carry tokens
            raise RunwayParameterError("url", redact_url(str(url)), "must be an absolute http(s) URL")
        return self._call("POST", DOWNLOAD_URL_PATH, body={"url": url}, parse=_to_url)  # type: ignore[no-any-return]

    def get_download_allowed_hosts(self) -> frozenset[str]:
        """Host names downloads may reach on internal addresses (extra ``download_allowed_hosts``)."""
        value = self._settings().extra.get("download_allowed_hosts")
        if value is None or value == "":
            return frozenset()
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)) or not all(isinstance(host, str) for host in value):
            raise ValueError("Runway connection extra download_allowed_hosts must be a list of host names")
        return frozenset(host.strip().lower().rstrip(".") for host in value if host.strip())

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and base URL by reading the account's credits (the UI's Test button)."""
        try:
            credits = self._call("GET", CREDIT_PATH, parse=_to_credits, retries=0)
        except Exception as error:
            return False, f"Runway connection test failed: {error}"
        return True, f"Connected to {self.base_url}: {credits} credits remaining"

    # ----------------------------------------------------------------- async, for triggers

    async def __aenter__(self) -> RunwayHook:
        """Read the connection asynchronously and hold one aiohttp session for the whole wait.

        Hooks of the same event loop (a triggerer's) with the same connection settings share the
        session and its connection pool, so a thousand waits do not hold a thousand sockets or pay a
        thousand TLS handshakes; the session closes when the last of them exits.
        """
        if self._asession is None:
            settings = await self._asettings()
            self._session_key = (settings.base_url, settings.api_key, settings.connect_timeout, settings.read_timeout)
            self._shared = _loop_shared()
            self._asession = self._shared.acquire_session(self._session_key, lambda: _new_client_session(settings))
        self._asession_depth += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._asession_depth -= 1
        if self._asession_depth <= 0 and self._asession is not None:
            self._asession, self._asession_depth = None, 0
            if self._shared is not None:
                await self._shared.release_session(self._session_key)

    async def aget_task(self, task_id: str, family: str | TaskFamily = "runway") -> RunwayTask:
        """Async :meth:`get_task`; reuses the session inside ``async with hook:``, else opens one."""
        task_family = family if isinstance(family, TaskFamily) else TaskFamily.coerce(family)
        if task_id not in self._checked_task_ids:  # a trigger polls one id many times: check it once
            check_task_id(task_id)
            if len(self._checked_task_ids) < 1000:
                self._checked_task_ids.add(task_id)
        if self._asession is None:
            async with self:
                return await self.aget_task(task_id, task_family)
        settings = await self._asettings()
        path = STATUS_PATHS[task_family]

        async def attempt() -> RunwayTask:
            response = await self._asend("GET", path, {"taskId": task_id})
            return self._to_task(task_family, self._check("GET", path, response, task_id), task_id, path)

        # Fast path: most polls succeed at once, so tenacity is only set up after a failure.
        try:
            return await attempt()
        except RunwayError as error:
            if settings.retry_limit < 1 or not _read_may_retry(error):
                raise
            first_failure: list[BaseException] = [error]

        async def replay_then_attempt() -> RunwayTask:
            if first_failure:  # tenacity's attempt 1 is the failure above, so its waits and logs count it
                raise first_failure.pop()
            return await attempt()

        retrying = tenacity.AsyncRetrying(
            sleep=lambda seconds: self._asleep(seconds),
            **self._retry_kwargs(_read_may_retry, settings.retry_limit, "GET", path),
        )
        return await retrying(replay_then_attempt)  # type: ignore[no-any-return]

    async def _asend(self, method: str, path: str, params: dict[str, Any] | None) -> _Response:
        if self._asession is None:
            raise RuntimeError("RunwayHook._asend needs an open session: use `async with hook:`")
        url = f"{self.base_url}{path}"  # the settings are cached by __aenter__, so no blocking read here
        started = time.monotonic()
        failure: RunwayTransportError | None = None
        try:
            async with self._asession.request(method, url, params=params, allow_redirects=False) as response:
                limit = MAX_BODY_BYTES if response.status < 400 else MAX_ERROR_BODY_BYTES
                content = await _aread_capped(response.content, limit)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except Exception as error:  # aiohttp's, asyncio's timeouts, and local refusals (a bad header is a ValueError)
            elapsed = (time.monotonic() - started) * 1000
            self.log.warning("Runway API %s %s failed after %.0f ms: %s", method, path, elapsed, type(error).__name__)
            never_sent = isinstance(error, ValueError) or _aiohttp_never_sent(error)
            failure = self._transport_error(method, path, error, never_sent=never_sent)
        if failure is not None:
            raise failure  # outside the handler: the original error is not chained
        return _Response(status, self._redact(content), retry_after, (time.monotonic() - started) * 1000)

    # ----------------------------------------------------------------- waiting

    def wait_for_task(
        self,
        task_id: str,
        family: str | TaskFamily = "runway",
        *,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        deadline_source: str | None = None,
        max_consecutive_errors: int | None = None,
    ) -> WaitDecision:
        """Poll a task until it finishes, fails or ``deadline`` (Unix epoch seconds) passes; blocks.

        Each read is judged by :class:`~airflow_provider_runway.core.wait.WaitPolicy`, as in the
        trigger and the sensor. Returns the final decision (done, failed or timed out); never raises
        for a failed wait.
        """
        policy = WaitPolicy(
            task_id,
            poll_interval=poll_interval,
            deadline=deadline,
            deadline_source=deadline_source,
            retry_delay=self.retry_delay,
            max_consecutive_errors=max_consecutive_errors,
        )
        return wait_sync(lambda: self.get_task(task_id, family), policy, log=self.log)


async def _aread_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _mask(secret: str) -> None:
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - older task SDK
        return
    mask_secret(secret)


def _to_credits(data: Any) -> int:
    if isinstance(data, bool) or not isinstance(data, (int, float, str)):
        raise RunwayProtocolError(f"GET {CREDIT_PATH} returned no credit count: {truncate(repr(data))}")
    try:
        return int(float(data))
    except ValueError:
        raise RunwayProtocolError(f"GET {CREDIT_PATH} returned no credit count: {truncate(repr(data))}") from None


def _to_url(data: Any) -> str:
    if not isinstance(data, str) or not data.strip():
        raise RunwayProtocolError(f"POST {DOWNLOAD_URL_PATH} returned no URL: {truncate(repr(data))}")
    url = data.strip()
    if not is_http_url(url):
        raise RunwayProtocolError(f"POST {DOWNLOAD_URL_PATH} returned no http(s) URL: {redact_url(url)!r:.120}")
    return url
