"""Hook for KIE.ai's Runway video API (Gen-3 generate, extend, Aleph) over requests and aiohttp."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook, ObjectStoragePath

if TYPE_CHECKING:
    import aiohttp

from airflow_provider_runway.core.errors import (
    MAX_ERROR_BODY_BYTES,
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
from airflow_provider_runway.core.pricing import PRICE_TABLE_EXTRA, price_table
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, parse_record, parse_unfinished
from airflow_provider_runway.core.retry import (
    DEFAULT_RETRY_DELAY,
    DEFAULT_RETRY_LIMIT,
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    create_may_retry,
    create_outcome_unknown,
    read_may_retry,
)
from airflow_provider_runway.core.wait import WaitDecision, WaitPolicy, wait_sync
from airflow_provider_runway.core.wire import (
    ALEPH_GENERATE_PATH,
    CREDIT_PATH,
    DOWNLOAD_URL_PATH,
    RUNWAY_EXTEND_PATH,
    RUNWAY_GENERATE_PATH,
    STATUS_PATHS,
    created_task_id,
    status_path,
)
from airflow_provider_runway.hooks.connection_form import ui_field_behaviour
from airflow_provider_runway.hooks.transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    MAX_BODY_BYTES,
    USER_AGENT,
    BearerAuth,
    ConnectionFields,
    KeepAliveAdapter,
    LoopShared,
    NoRedirectSession,
    Response,
    Settings,
    aiohttp_never_sent,
    aread_response,
    as_cert,
    as_proxies,
    as_verify,
    build_base_url,
    clean_api_key,
    extra_float,
    is_certificate_error,
    loop_shared,
    mask_in_logs,
    new_client_session,
    read_capped,
    redact_error,
    redact_key,
    request_never_sent,
)
from airflow_provider_runway.openlineage.hook_lineage import report_transfer
from airflow_provider_runway.transfer.uploads import (
    DEFAULT_UPLOAD_PATH,
    DEFAULT_UPLOAD_TIMEOUT,
    UPLOAD_BASE_URL_EXTRA,
    InputSource,
    UploadLimits,
    check_upload_base_url,
    upload_file,
)

__all__ = ["RunwayHook"]

#: Extra holding the key KIE signs callbacks with; "secret" is among the names Airflow masks.
WEBHOOK_SECRET_EXTRA = "webhook_secret"
#: The extra's earlier name, still read; Airflow's connection API and UI show it in clear.
LEGACY_WEBHOOK_KEY_EXTRA = "webhook_hmac_key"


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
        self._settings_cache: Settings | None = None
        self._requests_session: requests.Session | None = None
        self._asession: aiohttp.ClientSession | None = None
        self._aurls: dict[tuple[str, str, tuple[tuple[str, Any], ...]], Any] = {}
        self._asession_depth = 0
        self._aproxy: tuple[str | None, aiohttp.BasicAuth | None] = (None, None)
        self._session_key: tuple[Any, ...] = ()
        self._shared: LoopShared | None = None
        self._checked_task_ids: set[str] = set()
        # Injection points for tests; tenacity looks them up at each retry.
        self._sleep: Callable[[float], None] = time.sleep
        self._asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the password as the API key, hide the login, and show every extra the hook reads."""
        return ui_field_behaviour()

    # ----------------------------------------------------------------- settings

    def _settings_from(self, fields: ConnectionFields) -> Settings:
        extra = dict(fields.extra) if isinstance(fields.extra, Mapping) else {}
        api_key = clean_api_key(fields.password, self.runway_conn_id)
        if api_key != fields.password:
            mask_in_logs(api_key)  # Airflow masks the password as stored, not the key without its newline
        retry_limit = self.retry_limit
        if retry_limit is None:
            retry_limit = int(extra_float(extra, "retry_limit", DEFAULT_RETRY_LIMIT))
        retry_delay = self.retry_delay
        if retry_delay is None:
            retry_delay = extra_float(extra, "retry_delay", DEFAULT_RETRY_DELAY)
        read_timeout = self.timeout if self.timeout is not None else extra_float(extra, "read_timeout", 0)
        return Settings(
            base_url=build_base_url(fields.host, fields.port, extra, schema=fields.schema),
            api_key=api_key,
            connect_timeout=extra_float(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT) or DEFAULT_CONNECT_TIMEOUT,
            read_timeout=read_timeout or DEFAULT_READ_TIMEOUT,
            retry_limit=retry_limit,
            retry_delay=retry_delay,
            extra=extra,
            proxies=as_proxies(extra.get("proxies")),
            verify=as_verify(extra.get("verify")),
            cert=as_cert(extra.get("cert")),
        )

    def _settings(self) -> Settings:
        if self._settings_cache is None:
            conn = self.get_connection(self.runway_conn_id)
            self._settings_cache = self._settings_from(
                ConnectionFields(conn.schema, conn.host, conn.port, conn.password, conn.extra_dejson)
            )
        return self._settings_cache

    async def _asettings(self) -> Settings:
        if self._settings_cache is None:
            fields = await loop_shared().connection(self.runway_conn_id, self._aread_connection)
            self._settings_cache = self._settings_from(fields)
        return self._settings_cache

    async def _aread_connection(self) -> ConnectionFields:
        try:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
        except ImportError:  # an older common-compat provider
            conn = await self.aget_connection(self.runway_conn_id)
            extra = conn.extra_dejson
        else:
            conn = await get_async_connection(self.runway_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
        return ConnectionFields(conn.schema, conn.host, conn.port, conn.password, extra)

    @property
    def base_url(self) -> str:
        """The API base URL from the connection, ``https://api.kie.ai`` when its host is empty."""
        return self._settings().base_url

    def get_validation_limits(self) -> ValidationLimits:
        """Prompt length and duration limits from the connection's extra (defaults otherwise)."""
        return ValidationLimits.from_extra(self._settings().extra)

    def get_price_table(self) -> dict[str, float | None]:
        """KIE's credit prices (:mod:`~airflow_provider_runway.core.pricing`) with the extra ``price_table`` applied."""
        return price_table(self._settings().extra.get(PRICE_TABLE_EXTRA))

    async def aget_price_table(self) -> dict[str, float | None]:
        """:meth:`get_price_table` for triggers (reads the connection through the async API)."""
        return price_table((await self._asettings()).extra.get(PRICE_TABLE_EXTRA))

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
        mask_in_logs(text)  # masked in logs whatever the extra's name
        return text

    def get_conn(self) -> requests.Session:
        """A ``requests`` session with Bearer auth, the User-Agent and (by default) TCP keep-alive."""
        settings = self._settings()
        session = NoRedirectSession()
        session.auth = BearerAuth(settings.api_key)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if self.tcp_keep_alive:
            for prefix in ("http://", "https://"):
                session.mount(prefix, KeepAliveAdapter())
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

        return await acall_with_retries(
            attempt,
            policy=read_may_retry,
            retries=settings.retry_limit,
            delay=settings.retry_delay,
            log=self.log,
            what=f"{method} {path}",
            sleep=lambda seconds: self._asleep(seconds),
        )

    def _parsed(
        self, parse: Callable[[Any], Any], method: str, path: str, response: Response, task_id: str | None
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
            redact_error(error, self._key())
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

    def _transport_error(
        self, method: str, path: str, error: BaseException, *, never_sent: bool
    ) -> RunwayTransportError:
        """A :class:`RunwayTransportError` for ``error`` with the key removed in every form it may take."""
        detail = truncate(redact_key(str(error), self._key())) or "no detail"
        if is_certificate_error(error):
            detail = (
                "TLS certificate verification failed; if the server uses a private CA, set the connection "
                f"extra 'verify' to its CA bundle path ({detail})"
            )
        return RunwayTransportError(
            f"{method} {path} failed: {type(error).__name__}: {detail}", request_sent=not never_sent
        )

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None) -> Response:
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
                content = read_capped(response)
                status, retry_after = response.status_code, response.headers.get("Retry-After")
        except Exception as error:  # requests', urllib3's and http.client's alike (a bad header is a ValueError)
            elapsed = (time.monotonic() - started) * 1000
            self.log.warning("Runway API %s %s failed after %.0f ms: %s", method, path, elapsed, type(error).__name__)
            # A ValueError (a bad header, an invalid URL) is a local refusal: nothing was sent.
            never_sent = isinstance(error, ValueError) or (
                isinstance(error, requests.RequestException) and request_never_sent(error)
            )
            failure = self._transport_error(method, path, error, never_sent=never_sent)
        if failure is not None:
            raise failure  # raised outside the handler, so the original error (which may quote the key) is not chained
        return Response(status, content, retry_after, (time.monotonic() - started) * 1000)

    async def _asend(self, method: str, path: str, params: dict[str, Any] | None) -> Response:
        if self._asession is None or self._settings_cache is None:
            raise RuntimeError("RunwayHook._asend needs an open session: use `async with hook:`")
        settings = self._settings_cache
        started = time.monotonic()
        failure: RunwayTransportError | None = None
        try:
            async with self._asession.request(
                method,
                self._aurl(settings.base_url, path, params),
                allow_redirects=False,
                proxy=self._aproxy[0],
                proxy_auth=self._aproxy[1],
            ) as response:
                limit = MAX_BODY_BYTES if response.status < 400 else MAX_ERROR_BODY_BYTES
                content = await aread_response(response, limit)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except Exception as error:  # aiohttp's, asyncio's timeouts, and local refusals (a bad header is a ValueError)
            elapsed = (time.monotonic() - started) * 1000
            self.log.warning("Runway API %s %s failed after %.0f ms: %s", method, path, elapsed, type(error).__name__)
            never_sent = isinstance(error, ValueError) or aiohttp_never_sent(error)
            failure = self._transport_error(method, path, error, never_sent=never_sent)
        if failure is not None:
            raise failure  # outside the handler: the original error is not chained
        return Response(status, content, retry_after, (time.monotonic() - started) * 1000)

    def _aurl(self, base_url: str, path: str, params: dict[str, Any] | None) -> Any:
        """The request URL as a ``yarl.URL``, built once per path and query (a wait reads one URL many times)."""
        key = (base_url, path, tuple(params.items()) if params else ())
        url = self._aurls.get(key)
        if url is None:
            from yarl import URL

            url = URL(f"{base_url}{path}").with_query(params) if params else URL(f"{base_url}{path}")
            if len(self._aurls) >= 64:
                self._aurls.clear()
            self._aurls[key] = url
        return url

    # ----------------------------------------------------------------- uploads

    def get_upload_limits(self) -> UploadLimits:
        """Input size limits from the extras ``upload_max_image_mb`` and ``upload_max_video_mb`` (10 MB each)."""
        return UploadLimits.from_extra(self._settings().extra)

    @property
    def upload_base_url(self) -> str:
        """The file upload host: the extra ``upload_base_url``; when unset, KIE's (``https://kieai.redpandaai.co``)
        if the API is KIE's, else the API's base URL (a simulator serves both)."""
        settings = self._settings()
        return check_upload_base_url(settings.extra.get(UPLOAD_BASE_URL_EXTRA), api_base_url=settings.base_url)

    def upload_file(
        self,
        source: InputSource | ObjectStoragePath | str | os.PathLike[str],
        *,
        upload_path: str = DEFAULT_UPLOAD_PATH,
        file_name: str | None = None,
        field: str | None = None,
    ) -> str:
        """Upload a local or object-storage file with KIE's File Upload API; return its ``downloadUrl``.

        The file is streamed (memory stays flat whatever its size) to the connection extra
        ``upload_base_url`` (when unset, see :attr:`upload_base_url`) and named from the SHA-256 of its
        bytes unless ``file_name`` is given, so uploading the same file again overwrites the earlier copy
        and a transient failure is retried like a read. KIE deletes uploaded files after 3 days.

        :param source: a local path, an ``ObjectStoragePath`` or a URL such as ``s3://bucket/in.png``.
        :param upload_path: the folder on KIE's file host, without leading or trailing slash.
        :param file_name: the name to store the file under, extension included.
        :param field: ``image_url``, ``video_url`` or ``reference_image``: apply that input's size limit
            (:meth:`get_upload_limits`) and kind; without it any file up to 100 MB is sent.
        """
        settings = self._settings()
        options: dict[str, Any] = {"verify": settings.verify, "cert": settings.cert}
        if settings.proxies:
            options["proxies"] = settings.proxies
        uploaded = upload_file(
            self._session(),
            self.upload_base_url,
            source,
            upload_path=upload_path,
            file_name=file_name,
            field=field,
            limits=self.get_upload_limits(),
            timeout=(settings.connect_timeout, max(settings.read_timeout, DEFAULT_UPLOAD_TIMEOUT[1])),
            retries=settings.retry_limit,
            retry_delay=settings.retry_delay,
            secret=settings.api_key,
            logger=self.log,
            sleep=lambda seconds: self._sleep(seconds),
            request_options=options,
        )
        report_transfer(self, source, uploaded.download_url)
        return uploaded.download_url

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
            self._shared = loop_shared()
            self._asession = self._shared.acquire_session(self._session_key, lambda: new_client_session(settings))
            self._aproxy = self._shared.proxy(settings)
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
                parse_unfinished(task_family, data, task_id) or self._to_task(task_family, data, task_id, path)
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
