"""Hook for KIE.ai's Runway video API (Gen-3 generate, extend, Aleph) over requests and aiohttp."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

import aiohttp
import requests
from aiohttp.helpers import get_env_proxy_for_url
from airflow.providers.common.compat.sdk import BaseHook
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from yarl import URL

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import (
    MAX_ERROR_BODY_BYTES,
    RunwayApiError,
    RunwayAuthError,
    RunwayCreateUncertainError,
    RunwayError,
    RunwayParameterError,
    RunwayProtocolError,
    RunwayTransportError,
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
from airflow_provider_runway.core.results import RUNWAY_STATES, RunwayTask, TaskFamily, TaskStatus, parse_record
from airflow_provider_runway.core.retry import (
    DEFAULT_RETRY_DELAY,
    DEFAULT_RETRY_LIMIT,
    MAX_RETRY_AFTER,
    RetryPolicy,
    acall_with_retries,
    backoff_delay,
    call_with_retries,
    create_may_retry,
    create_outcome_unknown,
    read_may_retry,
)
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
from airflow_provider_runway.hooks.connection_form import ui_field_behaviour

__all__ = ["MAX_RETRY_AFTER", "RunwayHook", "backoff_delay", "build_base_url", "clean_api_key", "redact_key"]

USER_AGENT = f"airflow-provider-runway/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: Largest successful response body read; KIE's envelopes are a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: Extra holding the key KIE signs callbacks with; "secret" is among the names Airflow masks.
WEBHOOK_SECRET_EXTRA = "webhook_secret"
#: The extra's earlier name, still read; Airflow's connection API and UI show it in clear.
LEGACY_WEBHOOK_KEY_EXTRA = "webhook_hmac_key"
#: ``Bearer <token>`` in any text, e.g. a header value quoted in an exception.
_BEARER_TOKEN = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
#: How long an event loop reuses a connection it read, so a burst of waits reads it once.
CONNECTION_REUSE_SECONDS = 30.0
#: Most sockets a shared session opens to the API; more concurrent requests queue for one.
MAX_CONNECTIONS = 200


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


def _as_verify(value: Any) -> bool | str:
    """The ``verify`` extra as requests takes it: ``True``, ``False`` or the path of a CA bundle."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    return text


def _as_cert(value: Any) -> str | tuple[str, str] | None:
    """The ``cert`` extra as requests takes it: a PEM path, or ``(certificate, key)`` paths."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(part, str) for part in value):
        return (value[0], value[1])
    raise ValueError("Runway connection extra cert must be a file path or a [certificate, key] pair of paths")


def _as_proxies(value: Any) -> dict[str, str]:
    """The ``proxies`` extra as requests takes it: URL scheme (or ``scheme://host``) to proxy URL."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping) or not all(isinstance(url, str) for url in value.values()):
        raise ValueError('Runway connection extra proxies must map URL schemes to proxy URLs: {"https": "http://..."}')
    return {str(key): url for key, url in value.items()}


def build_base_url(
    host: str | None, port: int | None, extra: Mapping[str, Any] | None = None, *, schema: str | None = None
) -> str:
    """The API base URL from a connection's schema (http or https), host and port.

    A host that carries its own scheme (``http://127.0.0.1:8089``) keeps it. Otherwise the schema
    field decides, then the extra ``use_https`` of earlier releases, then https.
    """
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        legacy = str((extra or {}).get("use_https", "")).strip().lower()
        scheme = (schema or "").strip().lower() or ("http" if legacy in _FALSE else "https")
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
    proxies: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None

    @property
    def async_proxy(self) -> str | None:
        """The ``proxies`` entry for the API's URL (aiohttp takes one proxy; none means the environment's)."""
        scheme, _, rest = self.base_url.partition("://")
        host = rest.split("/", 1)[0]
        for key in (f"{scheme}://{host}", scheme, "all"):
            if self.proxies.get(key):
                return self.proxies[key]
        return None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The aiohttp ``ssl`` argument matching requests' ``verify`` and ``cert``."""
        if self.verify is False:
            return False
        if self.verify is True:
            context = ssl.create_default_context()
        elif os.path.isdir(self.verify):
            context = ssl.create_default_context(capath=self.verify)
        else:
            context = ssl.create_default_context(cafile=self.verify)
        if isinstance(self.cert, tuple):
            context.load_cert_chain(self.cert[0], self.cert[1])
        elif self.cert:
            context.load_cert_chain(self.cert)
        return context


class _Response(NamedTuple):
    status: int
    body: bytes
    retry_after: str | None
    elapsed_ms: float


class _ConnectionFields(NamedTuple):
    schema: str | None
    host: str | None
    port: int | None
    password: str | None
    extra: Any


def _request_never_sent(error: requests.RequestException) -> bool:
    """Whether ``requests`` failed before the request could reach the server."""
    if isinstance(error, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True  # a failed TLS handshake sends no request either
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


def _is_certificate_error(error: BaseException) -> bool:
    return isinstance(error, (requests.exceptions.SSLError, aiohttp.ClientConnectorCertificateError)) or (
        "CERTIFICATE_VERIFY_FAILED" in str(error)
    )


class _KeepAliveAdapter(HTTPAdapter):
    """An adapter whose sockets send TCP keep-alives, so an idle pooled connection is not silently dropped."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        super().init_poolmanager(*args, **kwargs)


def _new_client_session(settings: _Settings) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {settings.api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=settings.ssl_context()),
        # One timer per request: ``total`` bounds the read too, and a ``sock_read`` timer would be
        # re-armed on every chunk (thousands of waits in a triggerer pay for each).
        timeout=aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout, sock_connect=settings.connect_timeout
        ),
        # HTTPS_PROXY / NO_PROXY from the environment apply to the triggerer as they do to requests, but
        # are read once per wait (_env_proxy), not by aiohttp on every request through two thread hops.
        trust_env=False,
    )


def _env_proxy(settings: _Settings) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy for the API: the connection's ``proxies`` extra, else HTTPS_PROXY / NO_PROXY from the environment."""
    if settings.async_proxy:
        return settings.async_proxy, None
    try:
        proxy, auth = get_env_proxy_for_url(URL(settings.base_url))
    except LookupError:
        return None, None
    return str(proxy), auth


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
        if fields.password:  # a connection without a key is not kept: once fixed, the next wait sees the fix
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


class RunwayHook(BaseHook):
    """
    Interact with KIE.ai's Runway API: create generate, extend and Aleph tasks and read their status.

    The connection (type ``runway``) holds the API key in ``password``; ``schema`` (http or https,
    default https), ``host`` and ``port`` locate the API (an empty host means ``https://api.kie.ai``;
    a host may also be a whole URL such as ``http://127.0.0.1:8089``). The extras the hook reads are
    listed, with their meaning, in :mod:`airflow_provider_runway.hooks.connection_form`; among them
    ``proxies``, ``verify`` and ``cert`` apply as in every HTTP provider, on the worker (requests) and
    in the triggerer (aiohttp, which also honours ``HTTPS_PROXY`` and ``NO_PROXY``).

    Retryable errors are retried with exponential back-off and jitter
    (:mod:`airflow_provider_runway.core.retry`); a create only when no task can have been created,
    else it raises :class:`~airflow_provider_runway.core.errors.RunwayCreateUncertainError` instead of
    paying twice. The key never appears in logs, exceptions or reprs.

    For triggers, ``async with hook:`` reads the connection through Airflow's async API and holds one
    aiohttp session for the whole wait, shared by the hooks of the same event loop and settings.

    :param runway_conn_id: The Runway connection to use.
    :param retry_limit: Retries after the first attempt of a retryable call; ``None`` means the
        connection's ``retry_limit`` extra, else 5.
    :param retry_delay: Base of the exponential back-off, in seconds; ``None`` means the connection's
        ``retry_delay`` extra, else 1.
    :param timeout: Read timeout in seconds, overriding the connection's ``read_timeout`` extra.
    :param tcp_keep_alive: Send TCP keep-alives on the synchronous path's pooled connections.
    """

    conn_name_attr = "runway_conn_id"
    default_conn_name = "runway_default"
    conn_type = "runway"
    hook_name = "Runway (KIE.ai)"

    def __init__(
        self,
        runway_conn_id: str = default_conn_name,
        *,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        tcp_keep_alive: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retry_limit is not None and retry_limit < 0:
            raise ValueError(f"retry_limit must be 0 or more, got {retry_limit}")
        if retry_delay is not None and retry_delay < 0:
            raise ValueError(f"retry_delay must not be negative, got {retry_delay}")
        self.runway_conn_id = runway_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.tcp_keep_alive = tcp_keep_alive
        self._settings_cache: _Settings | None = None
        self._requests_session: requests.Session | None = None
        self._asession: aiohttp.ClientSession | None = None
        self._asession_depth = 0
        self._aproxy: tuple[str | None, aiohttp.BasicAuth | None] = (None, None)
        self._session_key: tuple[Any, ...] = ()
        self._shared: _LoopShared | None = None
        self._checked_task_ids: set[str] = set()
        # Injection points for tests; tenacity looks them up at each retry.
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the password as the API key, hide the login, and show every extra the hook reads."""
        return ui_field_behaviour()

    # ----------------------------------------------------------------- settings

    def _settings_from(self, fields: _ConnectionFields) -> _Settings:
        extra = dict(fields.extra) if isinstance(fields.extra, Mapping) else {}
        api_key = clean_api_key(fields.password, self.runway_conn_id)
        if api_key != fields.password:
            _mask(api_key)  # Airflow masks the password as stored, not the key without its newline
        retry_limit = self.retry_limit
        if retry_limit is None:
            retry_limit = int(_as_float(extra, "retry_limit", DEFAULT_RETRY_LIMIT))
        retry_delay = self.retry_delay
        if retry_delay is None:
            retry_delay = _as_float(extra, "retry_delay", DEFAULT_RETRY_DELAY)
        read_timeout = self.timeout if self.timeout is not None else _as_float(extra, "read_timeout", 0)
        return _Settings(
            base_url=build_base_url(fields.host, fields.port, extra, schema=fields.schema),
            api_key=api_key,
            connect_timeout=_as_float(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT) or DEFAULT_CONNECT_TIMEOUT,
            read_timeout=read_timeout or DEFAULT_READ_TIMEOUT,
            retry_limit=retry_limit,
            retry_delay=retry_delay,
            extra=extra,
            proxies=_as_proxies(extra.get("proxies")),
            verify=_as_verify(extra.get("verify")),
            cert=_as_cert(extra.get("cert")),
        )

    def _settings(self) -> _Settings:
        if self._settings_cache is None:
            conn = self.get_connection(self.runway_conn_id)
            self._settings_cache = self._settings_from(
                _ConnectionFields(conn.schema, conn.host, conn.port, conn.password, conn.extra_dejson)
            )
        return self._settings_cache

    async def _asettings(self) -> _Settings:
        if self._settings_cache is None:
            fields = await _loop_shared().connection(self.runway_conn_id, self._aread_connection)
            self._settings_cache = self._settings_from(fields)
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
        return _ConnectionFields(conn.schema, conn.host, conn.port, conn.password, extra)

    @property
    def base_url(self) -> str:
        """The API base URL from the connection, ``https://api.kie.ai`` when its host is empty."""
        return self._settings().base_url

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

    def get_conn(self) -> requests.Session:
        """A ``requests`` session with Bearer auth, the User-Agent and (by default) TCP keep-alive."""
        settings = self._settings()
        session = requests.Session()
        session.auth = _BearerAuth(settings.api_key)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if self.tcp_keep_alive:
            for prefix in ("http://", "https://"):
                session.mount(prefix, _KeepAliveAdapter())
        return session

    def _session(self) -> requests.Session:
        if self._requests_session is None:
            self._requests_session = self.get_conn()
        return self._requests_session

    # ----------------------------------------------------------------- one call, sync and async

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        parse: Callable[[Any], Any] = lambda data: data,
        task_id: str | None = None,
        policy: RetryPolicy = read_may_retry,
        retries: int | None = None,
    ) -> Any:
        """One API call with retries; ``parse`` runs inside the retried attempt."""
        settings = self._settings()

        def attempt() -> Any:
            response = self._send(method, path, params, body)
            return self._parsed(parse, method, path, response, task_id)

        return call_with_retries(
            attempt,
            policy=policy,
            retries=settings.retry_limit if retries is None else retries,
            delay=settings.retry_delay,
            log=self.log,
            what=f"{method} {path}",
            sleep=lambda seconds: self._sleep(seconds),
        )

    async def _acall(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        parse: Callable[[Any], Any] = lambda data: data,
        task_id: str | None = None,
    ) -> Any:
        """Async :meth:`_call` for reads, on the session opened by ``async with hook:``."""
        settings = await self._asettings()

        async def attempt() -> Any:
            response = await self._asend(method, path, params)
            return self._parsed(parse, method, path, response, task_id)

        # Most reads succeed at once: only a failed first attempt pays for the retry machinery, which then
        # starts from that failure (same waits, logs and limits as if it had run the first attempt itself).
        try:
            return await attempt()
        except Exception as error:
            first_failure: list[BaseException] = [error]

        async def resumed() -> Any:
            if first_failure:
                raise first_failure.pop()
            return await attempt()

        return await acall_with_retries(
            resumed,
            policy=read_may_retry,
            retries=settings.retry_limit,
            delay=settings.retry_delay,
            log=self.log,
            what=f"{method} {path}",
            sleep=lambda seconds: self._asleep(seconds),
        )

    def _parsed(
        self, parse: Callable[[Any], Any], method: str, path: str, response: _Response, task_id: str | None
    ) -> Any:
        """``parse`` of the envelope's data; an error is logged and raised with the key redacted."""
        where = f" [task {task_id}]" if task_id else ""
        try:
            result = parse(
                parse_envelope(
                    response.status, response.body, retry_after=response.retry_after, method=method, path=path
                )
            )
        except RunwayError as error:
            self._redact_error(error)
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
        return result

    def _key(self) -> str:
        return self._settings_cache.api_key if self._settings_cache else ""

    def _redact_error(self, error: RunwayError) -> None:
        """Remove the key from an error's shown text, in case a server or proxy echoed it in a body."""
        key = self._key()
        error.message = redact_key(error.message, key)
        error.args = tuple(redact_key(arg, key) if isinstance(arg, str) else arg for arg in error.args)
        if isinstance(error, RunwayApiError):
            error.remote_message = redact_key(error.remote_message, key)

    def _transport_error(
        self, method: str, path: str, error: BaseException, *, never_sent: bool
    ) -> RunwayTransportError:
        """A :class:`RunwayTransportError` for ``error`` with the key removed in every form it may take."""
        detail = truncate(redact_key(str(error), self._key())) or "no detail"
        if _is_certificate_error(error):
            detail = (
                "TLS certificate verification failed; if the server uses a private CA, set the connection "
                f"extra 'verify' to its CA bundle path ({detail})"
            )
        return RunwayTransportError(
            f"{method} {path} failed: {type(error).__name__}: {detail}", request_sent=not never_sent
        )

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None) -> _Response:
        settings = self._settings()
        session = self._session()
        started = time.monotonic()
        failure: RunwayTransportError | None = None
        try:
            # verify, cert and proxies per request: set on the session, REQUESTS_CA_BUNDLE would override them.
            with session.request(
                method,
                f"{settings.base_url}{path}",
                params=params,
                json=body,
                timeout=(settings.connect_timeout, settings.read_timeout),
                stream=True,
                allow_redirects=False,
                proxies=settings.proxies or None,
                verify=settings.verify,
                cert=settings.cert,
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
        return _Response(status, content, retry_after, (time.monotonic() - started) * 1000)

    async def _asend(self, method: str, path: str, params: dict[str, Any] | None) -> _Response:
        if self._asession is None or self._settings_cache is None:
            raise RuntimeError("RunwayHook._asend needs an open session: use `async with hook:`")
        settings = self._settings_cache
        started = time.monotonic()
        failure: RunwayTransportError | None = None
        try:
            async with self._asession.request(
                method,
                f"{settings.base_url}{path}",
                params=params,
                allow_redirects=False,
                proxy=self._aproxy[0],
                proxy_auth=self._aproxy[1],
            ) as response:
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
        return _Response(status, content, retry_after, (time.monotonic() - started) * 1000)

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
            task_id: str = self._call("POST", path, body=payload, parse=task_id_of, policy=create_may_retry)
        except RunwayError as error:
            if create_outcome_unknown(error):
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
            self._session_key = (
                settings.base_url,
                settings.api_key,
                settings.connect_timeout,
                settings.read_timeout,
                settings.verify,
                settings.cert,
            )
            self._shared = _loop_shared()
            self._asession = self._shared.acquire_session(self._session_key, lambda: _new_client_session(settings))
            self._aproxy = _env_proxy(settings)
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
        path = STATUS_PATHS[task_family]
        return await self._acall(  # type: ignore[no-any-return]
            "GET",
            path,
            params={"taskId": task_id},
            parse=lambda data: (
                _pending_task(task_family, data, task_id) or self._to_task(task_family, data, task_id, path)
            ),
            task_id=task_id,
        )

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
            retry_delay=self._settings().retry_delay,
            max_consecutive_errors=max_consecutive_errors,
        )
        return wait_sync(lambda: self.get_task(task_id, family), policy, log=self.log)


_UNFINISHED = (TaskStatus.PENDING, TaskStatus.RUNNING)


def _pending_task(family: TaskFamily, data: Any, task_id: str) -> RunwayTask | None:
    """A record that plainly says "not finished yet", without the full normalisation; else None.

    Most reads of a wait return such a record, and nothing but its status matters to the wait.
    """
    if not isinstance(data, dict):
        return None
    if family is TaskFamily.RUNWAY:
        raw = data.get("state")
        status = RUNWAY_STATES.get(raw) if isinstance(raw, str) else None
        if status in _UNFINISHED:
            return RunwayTask(task_id=task_id, family=family, status=status, raw_state=raw)  # type: ignore[arg-type]
        return None
    flag = data.get("successFlag")
    if flag == 0 and not isinstance(flag, bool) and not data.get("errorCode") and not data.get("errorMessage"):
        response = data.get("response")
        status = TaskStatus.RUNNING if isinstance(response, dict) and response else TaskStatus.PENDING
        return RunwayTask(task_id=task_id, family=family, status=status, raw_state=f"successFlag={flag}")
    return None


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
