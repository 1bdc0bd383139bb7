"""The hook's HTTP plumbing: connection settings, the API key's hygiene, requests and aiohttp sessions.

:class:`~airflow_provider_runway.hooks.runway.RunwayHook` speaks KIE's API through what is here: the
settings read from a connection (base URL, timeouts, retries, ``proxies``, ``verify``, ``cert``), the
Bearer auth that never shows the key, and the aiohttp sessions and connection reads that the hooks on
one event loop (every wait of a triggerer) share.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import socket
import ssl
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

# aiohttp (about 0.2 s to import) serves only the triggerer's waits: a worker that parses a DAG and creates a
# task never needs it, so it is imported where a session is made.
if TYPE_CHECKING:
    import aiohttp

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import MAX_ERROR_BODY_BYTES, RunwayApiError, RunwayAuthError, RunwayError
from airflow_provider_runway.core.wire import DEFAULT_BASE_URL

USER_AGENT = f"airflow-provider-runway/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: Largest successful response body read; KIE's envelopes are a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: ``Bearer <token>`` in any text, e.g. a header value quoted in an exception.
_BEARER_TOKEN = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
#: How long an event loop reuses the proxy it worked out from the environment (the connection itself is read by
#: every wait, so a rotated key is used by the next one; only waits starting together share one read).
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


def redact_error(error: RunwayError, key: str) -> None:
    """Remove ``key`` from an error's shown text, in case a server or proxy echoed it in a body."""
    error.message = redact_key(error.message, key)
    error.args = tuple(redact_key(arg, key) if isinstance(arg, str) else arg for arg in error.args)
    if isinstance(error, RunwayApiError):
        error.remote_message = redact_key(error.remote_message, key)


def read_capped(response: requests.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most ``limit`` bytes of a streamed body (at most :data:`MAX_ERROR_BODY_BYTES` of an error's).

    A redirect's body is not read at all (``b""``): redirects are never followed, and a compressed
    body could expand far beyond ``limit`` before the first chunk is returned.
    """
    if 300 <= response.status_code < 400:
        return b""
    if response.status_code >= 400:
        limit = min(limit, MAX_ERROR_BODY_BYTES)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def extra_float(extra: Mapping[str, Any], key: str, default: float) -> float:
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


def as_verify(value: Any) -> bool | str:
    """The ``verify`` extra as requests takes it: ``True``, ``False`` or the path of a CA bundle."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    return text


def as_cert(value: Any) -> str | tuple[str, str] | None:
    """The ``cert`` extra as requests takes it: a PEM path, or ``(certificate, key)`` paths."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(part, str) for part in value):
        return (value[0], value[1])
    raise ValueError("Runway connection extra cert must be a file path or a [certificate, key] pair of paths")


def as_proxies(value: Any) -> dict[str, str]:
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


class BearerAuth(AuthBase):
    """Sets the ``Authorization: Bearer`` and ``User-Agent`` headers; its repr never shows the key."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        request.headers["User-Agent"] = USER_AGENT
        return request

    def __repr__(self) -> str:
        return "BearerAuth(api_key=***)"


@dataclass(frozen=True)
class Settings:
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
        """The aiohttp ``ssl`` argument matching requests' ``verify`` and ``cert``.

        Building a context reads the CA store from disk (about 20 ms, on the event loop): the default
        is aiohttp's own, built once per process (``True``), and a custom one is built once per
        bundle and certificate files, again when one of them changes on disk.
        """
        if self.verify is False:
            return False
        if self.verify is True and not self.cert:
            return True
        files = [self.verify] if isinstance(self.verify, str) else []
        files += list(self.cert) if isinstance(self.cert, tuple) else [self.cert] if self.cert else []
        return _ssl_context(self.verify, self.cert, tuple(_modified(path) for path in files))


def _modified(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1  # loading it reports the problem


@functools.lru_cache(maxsize=16)
def _ssl_context(
    verify: bool | str, cert: str | tuple[str, str] | None, _files_modified: tuple[int, ...]
) -> ssl.SSLContext:
    if not isinstance(verify, str):
        context = ssl.create_default_context()
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    if isinstance(cert, tuple):
        context.load_cert_chain(cert[0], cert[1])
    elif cert:
        context.load_cert_chain(cert)
    return context


class Response(NamedTuple):
    status: int
    body: bytes
    retry_after: str | None
    elapsed_ms: float


class ConnectionFields(NamedTuple):
    schema: str | None
    host: str | None
    port: int | None
    password: str | None
    extra: Any


def request_never_sent(error: requests.RequestException) -> bool:
    """Whether ``requests`` failed before the request could reach the server."""
    if isinstance(error, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True  # a failed TLS handshake sends no request either
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def aiohttp_never_sent(error: BaseException) -> bool:
    import aiohttp

    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None and isinstance(error, connect_timeout):
        return True
    return isinstance(error, aiohttp.ClientConnectorError)


def is_certificate_error(error: BaseException) -> bool:
    if isinstance(error, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(error):
        return True
    aiohttp = sys.modules.get("aiohttp")  # an aiohttp error means aiohttp is imported
    return aiohttp is not None and isinstance(error, aiohttp.ClientConnectorCertificateError)


class NoRedirectSession(requests.Session):
    """A session that never prepares a redirect's next hop.

    Even with ``allow_redirects=False``, ``requests`` reads and decodes a redirect's whole body (unbounded,
    gzip included) to prepare the next request for ``Response.next``; here that step is skipped, so a 3xx
    body is left unread and dropped with the connection.
    """

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


class KeepAliveAdapter(HTTPAdapter):
    """An adapter whose sockets send TCP keep-alives, so an idle pooled connection is not silently dropped."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        super().init_poolmanager(*args, **kwargs)


def new_client_session(settings: Settings) -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {settings.api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=settings.ssl_context()),
        # One timer per request, armed once: a request as a whole gets connect_timeout + read_timeout.
        # A ``sock_read`` timer (read_timeout between chunks, as requests counts it on the worker) is
        # cancelled and armed again on every chunk received, which thousands of waits in one triggerer
        # pay for on every poll; a silent server is cut connect_timeout later instead.
        timeout=aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout, sock_connect=settings.connect_timeout
        ),
        # HTTPS_PROXY / NO_PROXY from the environment apply to the triggerer as they do to requests, but
        # are read once per wait (proxy_for), not by aiohttp on every request through two thread hops.
        trust_env=False,
    )


def proxy_for(settings: Settings) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy for the API: the connection's ``proxies`` extra, else HTTPS_PROXY / NO_PROXY from the environment."""
    if settings.async_proxy:
        return settings.async_proxy, None
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(settings.base_url))
    except LookupError:
        return None, None
    return str(proxy), auth


class LoopShared:
    """What the hooks running on one event loop share: connection reads in flight, sessions, proxies."""

    def __init__(self) -> None:
        self._reading: dict[str, asyncio.Future[ConnectionFields]] = {}
        self._sessions: dict[tuple[Any, ...], list[Any]] = {}  # key -> [session, users]
        self._proxies: dict[tuple[str, str | None], tuple[float, tuple[str | None, aiohttp.BasicAuth | None]]] = {}

    def proxy(self, settings: Settings) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """:func:`proxy_for` ``settings``, read at most every :data:`CONNECTION_REUSE_SECONDS` (it parses the
        environment and may read ``~/.netrc``: a burst of waits starting together would each pay that)."""
        key = (settings.base_url, settings.async_proxy)
        entry = self._proxies.get(key)
        now = time.monotonic()
        if entry is None or now - entry[0] > CONNECTION_REUSE_SECONDS:
            entry = self._proxies[key] = (now, proxy_for(settings))
        return entry[1]

    async def connection(self, conn_id: str, read: Callable[[], Awaitable[ConnectionFields]]) -> ConnectionFields:
        """The connection's fields, read for this wait; waits starting while a read is in flight share it.

        Nothing is kept once the read is done, so the next wait sees a rotated key or a fixed connection.
        """
        reading = self._reading.get(conn_id)
        if reading is None:
            # A burst of waits starting together would otherwise each read the connection.
            reading = self._reading[conn_id] = asyncio.ensure_future(read())
            reading.add_done_callback(lambda done: self._read_done(conn_id, done))
        return await asyncio.shield(reading)

    def _read_done(self, conn_id: str, done: asyncio.Future[ConnectionFields]) -> None:
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


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopShared] = weakref.WeakKeyDictionary()


def loop_shared() -> LoopShared:
    loop = asyncio.get_running_loop()
    try:
        shared = _SHARED.get(loop)
        if shared is None:
            shared = _SHARED[loop] = LoopShared()
    except TypeError:  # an event loop type without weak references: share nothing
        return LoopShared()
    return shared


async def aread_response(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``response``, at most ``limit`` bytes: read at once when its announced length fits."""
    length = response.content_length
    if length is not None and length <= limit:
        return await response.read()
    return await aread_capped(response.content, limit)


async def aread_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def mask_in_logs(secret: str) -> None:
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - older task SDK
        return
    mask_secret(secret)
