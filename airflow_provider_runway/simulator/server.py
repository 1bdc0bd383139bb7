"""The aiohttp application of runway-sim: KIE's Runway and Aleph endpoints, files and ``/_sim/``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlparse

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.log import access_logger

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.errors import RunwayParameterError, truncate
from airflow_provider_runway.core.models import AlephRequest, ExtendRequest, GenerateRequest, ValidationLimits
from airflow_provider_runway.simulator.callbacks import CallbackDispatcher
from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.control import add_control_routes
from airflow_provider_runway.simulator.engine import (
    ACCESS_REFUSED_MESSAGE,
    ALEPH,
    RUNWAY,
    USAGE_CAP_MESSAGE,
    Account,
    SimEngine,
    SimError,
    Task,
)
from airflow_provider_runway.simulator.faults import FaultBook, FaultRule, endpoint_name
from airflow_provider_runway.simulator.media import mp4_bytes, png_bytes
from airflow_provider_runway.simulator.uploads import (
    CHUNK_BYTES,
    FILE_BASE64_UPLOAD_PATH,
    FILE_STREAM_UPLOAD_PATH,
    FILE_URL_UPLOAD_PATH,
    TEMPFILE_PREFIX,
    UPLOAD_PATHS,
    UPLOAD_SUCCESS_MESSAGE,
    FetchRefused,
    Staged,
    UploadedFile,
    UploadRejected,
    UploadStore,
    check_file_name,
    check_upload_path,
    fetch_into,
    mime_type_of,
    new_fetcher,
    suffix_of,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FILE_NAME = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(mp4|png)$")
REASONS: dict[int, str] = {455: "Service Unavailable", 451: "Unavailable For Legal Reasons", 505: "Feature Disabled"}
MAX_SHOWN_ID = 80

#: Python field names of the core's validation errors and the wire names KIE's users see.
WIRE_NAMES: dict[str, str] = {
    "image_url": "imageUrl",
    "video_url": "videoUrl",
    "reference_image": "referenceImage",
    "aspect_ratio": "aspectRatio",
    "water_mark": "waterMark",
    "callback_url": "callBackUrl",
    "source_task_id": "taskId",
    "task_id": "taskId",
    "upload_cn": "uploadCn",
    "expand_prompt": "expandPrompt",
}
_PYTHON_NAME = re.compile(r"\b(" + "|".join(WIRE_NAMES) + r")\b")
EXTEND_1080P_MESSAGE = "Video generated after 1080P cannot be extended"
#: How a discontinued Aleph is refused, by ``aleph_mode`` (404 is the unknown-path answer).
ALEPH_OFF_MESSAGES: dict[str, str] = {
    "422": "The model runway-aleph is not available: Runway Aleph is discontinued and no longer available on Kie AI",
    "505": "Runway Aleph is discontinued and no longer available on Kie AI",
}
MAX_FIELD_BYTES = 4096
#: Wire fields that take an image, and KIE's answer to one that is not.
IMAGE_FIELDS = frozenset({"imageUrl", "referenceImage"})
INCORRECT_IMAGE_FORMAT_MESSAGE = "Incorrect image format."


def check_upload_path_or_400(value: object) -> str:
    try:
        return check_upload_path(value)
    except UploadRejected as exc:
        raise SimError(400, str(exc)) from None


def wire_message(message: str) -> str:
    """``message`` with the core's Python field names replaced by the wire names."""
    return _PYTHON_NAME.sub(lambda m: WIRE_NAMES[m.group(1)], message)


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        reason=REASONS.get(status),
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def _utc(epoch: float, fmt: str) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime(fmt)


class RunwaySimulator:
    """A simulated KIE.ai Runway API as an aiohttp application.

    Use :attr:`app` with any aiohttp runner, or :meth:`start` / :meth:`stop` in a running event loop.
    :class:`~airflow_provider_runway.simulator.SimulatorThread` runs one in a background thread.

    Choices where the reference is silent: business errors (401, 402, 404, 422, the concurrency
    limit) follow ``error_style``; transport errors (unknown path 404, 405, body too large 413,
    injected faults) always use the HTTP status. Malformed JSON, a non-object body or a
    Content-Type other than ``application/json`` are 400; validation errors 422; extending an
    unknown task 404, an unfinished, failed or expired one 422; input URLs on a host under
    ``.invalid`` cannot be fetched (451), nor an upload of this simulator that is unknown or
    expired. Credits are charged at create and not refunded. The create rate limit always answers
    HTTP 429 with ``Retry-After`` (KIE documents the status). Extending a 1080p video is code 400
    with KIE's message. The File Upload API (KIE serves it on its own host; here on the same port)
    answers errors with ``"success": false`` in the error style; uploads are streamed to disk and
    served under ``/tempfile/<account>/<filePath>`` without a key, as KIE's temporary files are.

    :param config: behaviour of the simulator; defaults to :class:`SimulatorConfig` ().
    :param clock: source of real epoch time (tests may pass a fake one).
    """

    def __init__(self, config: SimulatorConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.engine = SimEngine(config or SimulatorConfig(), clock)
        self.faults = FaultBook(self.engine.config.seed)
        self.callbacks = CallbackDispatcher(self.engine)
        self.uploads = UploadStore(self.engine.config.upload_dir, self.engine.clock)
        self._fetcher: aiohttp.ClientSession | None = None
        self._secret = os.urandom(16)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self.app = self._build_app()

    @property
    def config(self) -> SimulatorConfig:
        return self.engine.config

    @property
    def limits(self) -> ValidationLimits:
        return ValidationLimits(max_prompt_length=self.config.max_prompt_length, durations=self.config.durations)

    # -- lifecycle --------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[self._guard])
        router = app.router
        router.add_post(wire.RUNWAY_GENERATE_PATH, self.runway_generate)
        router.add_post(wire.RUNWAY_EXTEND_PATH, self.runway_extend)
        router.add_get(wire.RUNWAY_RECORD_DETAIL_PATH, self.runway_record_detail)
        router.add_post(wire.ALEPH_GENERATE_PATH, self.aleph_generate)
        router.add_get(wire.ALEPH_RECORD_INFO_PATH, self.aleph_record_info)
        router.add_get(wire.CREDIT_PATH, self.credit)
        router.add_post(wire.DOWNLOAD_URL_PATH, self.download_url)
        router.add_get("/files/{name}", self.files)
        router.add_post(FILE_STREAM_UPLOAD_PATH, self.file_stream_upload)
        router.add_post(FILE_URL_UPLOAD_PATH, self.file_url_upload)
        router.add_post(FILE_BASE64_UPLOAD_PATH, self.file_base64_upload)
        router.add_get(TEMPFILE_PREFIX + "{label}/{path:.+}", self.tempfile)
        add_control_routes(router, self)
        app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        await self.callbacks.start()
        self._fetcher = new_fetcher(allow_internal=self.config.allow_internal_fetch)
        yield
        await self._fetcher.close()
        await self.callbacks.stop()
        self.uploads.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False) -> str:
        """Serve on ``host:port`` (0 picks a free port) in the running loop; returns the base URL."""
        runner = web.AppRunner(self.app, access_log=access_logger if access_log else None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"http://{shown}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving and cancel pending callbacks."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """Forget tasks, accounts, counters, faults and the pause; keep the configuration."""
        self.engine.reset()
        self.faults.clear()
        self.uploads.clear()

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def ok(data: Any) -> web.Response:
        return _json(200, {"code": 200, "msg": "success", "data": data})

    def error(self, code: int, message: str, *, http: bool = False, upload: bool = False) -> web.Response:
        """A business error in the configured style (HTTP 200 + body code, or that HTTP status).

        ``http`` forces the HTTP status; ``upload`` adds the upload API's ``"success": false``.
        """
        status = code if http or self.config.error_style == "http" else 200
        body: dict[str, Any] = {"success": False} if upload else {}
        body.update({"code": code, "msg": message, "data": None})
        return _json(status, body)

    @staticmethod
    def http_error(status: int, message: str) -> web.Response:
        """A transport-level error (unknown path, body too large): always that HTTP status."""
        return _json(status, {"code": status, "msg": message, "data": None})

    # -- middleware: counters, faults, errors ------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = endpoint_name(request.path)
        try:
            if name is None:
                return await handler(request)
            self.engine.requests[name] += 1
            rule = self.faults.pick(name)
            if rule is None:
                return await handler(request)
            self.engine.faults_fired[rule.kind] += 1
            return await self._apply_fault(rule, request, handler)
        except SimError as exc:
            response = self.error(exc.code, exc.message, http=exc.http, upload=request.path in UPLOAD_PATHS)
            response.headers.update(exc.headers)
            return response
        except web.HTTPException as exc:
            if exc.status == 413:
                return self.http_error(413, f"Request body too large (at most {self.config.max_body_bytes} bytes)")
            return self.http_error(exc.status, f"{exc.reason}: {request.method} {truncate(request.path, 100)}")
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("runway-sim: unexpected error on %s %s", request.method, request.path)
            return self.http_error(500, "Internal simulator error")

    async def _apply_fault(self, rule: FaultRule, request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = rule.kind
        if kind == "slow":
            await asyncio.sleep(rule.delay)
            return await handler(request)
        if kind in ("drop", "drop_after"):
            if kind == "drop_after":  # the request takes effect, only the answer is lost
                with contextlib.suppress(SimError):
                    await handler(request)
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError()
        if kind == "http500":
            return self.http_error(500, "Internal Server Error")
        if kind == "http455":
            return self.http_error(455, "Service unavailable: the system is under maintenance")
        if kind == "http408":
            return self.http_error(408, "Upstream returned nothing for over 10 minutes")
        if kind == "http429":
            headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else None
            return _json(429, {"code": 429, "msg": "Too many requests", "data": None}, headers)
        if kind.startswith("cap_"):
            message = USAGE_CAP_MESSAGE.format(period=kind.removeprefix("cap_"))
            return _json(429, {"code": 429, "msg": message, "data": None})
        if kind == "ip_refused":
            return self.error(401, ACCESS_REFUSED_MESSAGE)
        if kind == "malformed_json":
            return web.Response(
                status=200, body=b'{"code":200,"msg":"success","data":{"taskId":', content_type="application/json"
            )
        return web.Response(
            status=502,
            text="<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            content_type="text/html",
        )

    # -- request helpers --------------------------------------------------------------------

    def _account(self, request: web.Request) -> Account:
        self.engine.refuse_address(request.remote)
        return self.engine.authenticate(request.headers.get("Authorization"))

    async def _payload(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise SimError(400, f"Content-Type must be application/json, got {truncate(request.content_type, 60)!r}")
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SimError(400, "Malformed JSON in the request body") from None
        if not isinstance(payload, dict):
            raise SimError(400, "The request body must be a JSON object")
        return payload

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    @staticmethod
    def _validated(build: Callable[[], Any]) -> Any:
        try:
            return build()
        except RunwayParameterError as exc:
            field = WIRE_NAMES.get(exc.field, exc.field)
            raise SimError(
                422, f"Invalid {field}={truncate(repr(exc.value), 80)}: {wire_message(exc.allowed)}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise SimError(422, f"Invalid request body: {wire_message(truncate(str(exc), 120))}") from None

    def _fetch_inputs(self, request: web.Request, **urls: str | None) -> None:
        """Pretend to download the inputs: hosts under ``.invalid`` (RFC 2606) cannot be fetched (451),
        nor uploads of this simulator that are unknown or expired; an upload of this simulator that is
        not an image, given as an image, is KIE's 400 "Incorrect image format."."""
        for name, url in urls.items():
            parsed = urlparse(url) if url else None
            host = parsed.hostname if parsed else None
            if host and (host == "invalid" or host.endswith(".invalid")):
                raise SimError(451, f"Failed to fetch the input {name}: {truncate(str(url), 120)}")
            if parsed is None or parsed.netloc != request.host or not parsed.path.startswith(TEMPFILE_PREFIX):
                continue
            uploaded = self._uploaded(parsed.path)
            if uploaded is None:
                raise SimError(451, f"Failed to fetch the input {name}: the uploaded file is gone or unknown")
            if name in IMAGE_FIELDS and not uploaded.mime_type.startswith("image/"):
                raise SimError(400, INCORRECT_IMAGE_FORMAT_MESSAGE)

    def _query_task(self, request: web.Request, account: Account, family: str) -> Task:
        task_id = request.query.get("taskId", "").strip()
        if not task_id:
            raise SimError(422, "taskId is required")
        task = self.engine.find(task_id, account, family)
        if task is None:
            raise SimError(404, f"Task not found: {truncate(task_id, MAX_SHOWN_ID)}")
        self.engine.task_reads[task_id] += 1
        return task

    # -- KIE endpoints ----------------------------------------------------------------------

    def _create_account(self, request: web.Request) -> Account:
        """The account of a create request, admitted by the per-key rate limit."""
        account = self._account(request)
        self.engine.admit_create(account)
        return account

    async def runway_generate(self, request: web.Request) -> web.Response:
        account = self._create_account(request)
        payload = await self._payload(request)
        req: GenerateRequest = self._validated(lambda: GenerateRequest.from_payload(payload, self.limits))
        self._fetch_inputs(request, imageUrl=req.image_url)
        task = self.engine.create(
            account,
            kind="generate",
            params={"prompt": req.prompt, "imageUrl": req.image_url or "", "expandPrompt": True},
            duration=req.duration,
            quality=req.quality,
            aspect_ratio=req.aspect_ratio or "16:9",
            base_url=self._origin(request),
            callback_url=req.callback_url,
        )
        return self.ok({"taskId": task.task_id})

    async def runway_extend(self, request: web.Request) -> web.Response:
        account = self._create_account(request)
        payload = await self._payload(request)
        req: ExtendRequest = self._validated(lambda: ExtendRequest.from_payload(payload, self.limits))
        source = self.engine.find(req.source_task_id, account, RUNWAY)
        if source is None:
            raise SimError(404, f"Task not found: {truncate(req.source_task_id, MAX_SHOWN_ID)}")
        snap = self.engine.snapshot(source)
        if snap.state != "success" or snap.expired:
            shown = "expired" if snap.expired else snap.state
            raise SimError(422, f"Only a successfully finished video can be extended (taskId is {shown})")
        if source.quality == "1080p":
            raise SimError(400, EXTEND_1080P_MESSAGE)
        self._fetch_inputs(request, imageUrl=req.image_url)
        expand_prompt = True if req.expand_prompt is None else req.expand_prompt
        task = self.engine.create(
            account,
            kind="extend",
            params={"prompt": req.prompt, "imageUrl": req.image_url or "", "expandPrompt": expand_prompt},
            duration=5,
            quality=req.quality,
            aspect_ratio=source.aspect_ratio,
            base_url=self._origin(request),
            callback_url=req.callback_url,
            parent_task_id=source.task_id,
        )
        return self.ok({"taskId": task.task_id})

    def _check_aleph_served(self, request: web.Request) -> web.Response | None:
        """The answer of a discontinued Aleph (``aleph_mode``), or ``None`` while it is served."""
        mode = self.config.aleph_mode
        if mode == "on":
            return None
        if mode == "404":
            return self.http_error(404, f"Not Found: {request.method} {request.path}")
        self._account(request)
        return self.error(int(mode), ALEPH_OFF_MESSAGES[mode])

    async def aleph_generate(self, request: web.Request) -> web.Response:
        refused = self._check_aleph_served(request)
        if refused is not None:
            return refused
        account = self._create_account(request)
        payload = await self._payload(request)
        req: AlephRequest = self._validated(lambda: AlephRequest.from_payload(payload, self.limits))
        self._fetch_inputs(request, videoUrl=req.video_url, referenceImage=req.reference_image)
        task = self.engine.create(
            account,
            kind=ALEPH,
            params={k: v for k, v in req.to_payload().items() if k != "callBackUrl"},
            duration=5,
            quality="720p",
            aspect_ratio=req.aspect_ratio or "16:9",
            base_url=self._origin(request),
            callback_url=req.callback_url,
        )
        return self.ok({"taskId": task.task_id})

    async def runway_record_detail(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return self.ok(self.runway_record(self._query_task(request, account, RUNWAY)))

    async def aleph_record_info(self, request: web.Request) -> web.Response:
        refused = self._check_aleph_served(request)
        if refused is not None:
            return refused
        account = self._account(request)
        return self.ok(self.aleph_record(self._query_task(request, account, ALEPH)))

    async def credit(self, request: web.Request) -> web.Response:
        return self.ok(self._account(request).credits)

    async def download_url(self, request: web.Request) -> web.Response:
        self._account(request)
        payload = await self._payload(request)
        url = payload.get("url")
        if not isinstance(url, str) or not url.strip():
            raise SimError(422, "url is required: a file URL returned by this API")
        match = FILE_NAME.match(urlparse(url).path.removeprefix("/files/"))
        if not urlparse(url).path.startswith("/files/") or match is None:
            raise SimError(422, f"url is not a file hosted by this API: {truncate(url, 120)}")
        task = self.engine.find(match.group(1))
        snap = self.engine.snapshot(task) if task else None
        if task is None or snap is None or snap.state != "success":
            raise SimError(404, "File not found")
        if snap.expired:
            raise SimError(404, "File not found: it has expired and was deleted")
        path = f"/files/{match.group(0)}"
        # rounded up to whole seconds: a link is never valid for less than the configured lifetime
        expires = int(self.engine.clock() + self.engine.scaled(self.config.download_link_ttl)) + 1
        return self.ok(f"{self._origin(request)}{path}?token={self._token(path, expires)}&expires={expires}")

    # -- File Upload API --------------------------------------------------------------------

    def _upload_reply(self, request: web.Request, entry: UploadedFile) -> web.Response:
        self.engine.uploads[endpoint_name(request.path) or "upload"] += 1
        self.engine.upload_bytes += entry.size
        uploaded = datetime.fromtimestamp(entry.uploaded_at, tz=timezone.utc)
        data = {
            "fileName": entry.file_path.rsplit("/", 1)[1],
            "filePath": entry.file_path,
            "downloadUrl": f"{self._origin(request)}{TEMPFILE_PREFIX}{entry.label}/{quote(entry.file_path)}",
            "fileSize": entry.size,
            "mimeType": entry.mime_type,
            "uploadedAt": uploaded.strftime("%Y-%m-%dT%H:%M:%S.") + f"{uploaded.microsecond // 1000:03d}Z",
        }
        return _json(200, {"success": True, "code": 200, "msg": UPLOAD_SUCCESS_MESSAGE, "data": data})

    def _store(
        self,
        account: Account,
        upload_path: object,
        file_name: object,
        staged: Staged,
        suffix: str,
        declared: str | None,
    ) -> UploadedFile:
        """Check the fields and the size, then move ``staged`` into place."""
        try:
            path = check_upload_path(upload_path)
            name = check_file_name(file_name, suffix)
            staged.check()
        except UploadRejected as exc:
            raise SimError(400, str(exc)) from None
        return self.uploads.commit(account.label, path, name, staged, mime_type_of(name, declared))

    async def file_stream_upload(self, request: web.Request) -> web.Response:
        """``multipart/form-data`` with ``file``, ``uploadPath`` and ``fileName``; streamed to disk."""
        account = self._account(request)
        if request.content_type != "multipart/form-data":
            raise SimError(400, "Content-Type must be multipart/form-data with a file field")
        fields: dict[str, str] = {}
        staged: Staged | None = None
        original: str | None = None
        declared: str | None = None
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise SimError(400, "Nested multipart bodies are not supported")
                if part.name == "file" and staged is None:
                    staged = self.uploads.stage(self.config.upload_max_bytes, "file")
                    original, declared = part.filename, part.headers.get("Content-Type")
                    while chunk := await part.read_chunk(CHUNK_BYTES):
                        staged.write(chunk)
                elif part.name in ("uploadPath", "fileName"):
                    raw = await part.read_chunk(MAX_FIELD_BYTES + 1)
                    await part.release()
                    fields[part.name] = raw[:MAX_FIELD_BYTES].decode("utf-8", "replace")
                else:
                    await part.release()
            if staged is None:
                raise SimError(400, "file is required: the multipart field 'file' is missing")
            entry = self._store(
                account, fields.get("uploadPath"), fields.get("fileName"), staged, suffix_of(original), declared
            )
        except ValueError as exc:  # a malformed multipart body
            raise SimError(400, f"Malformed multipart body: {truncate(str(exc), 120)}") from None
        finally:
            if staged is not None:
                staged.discard()
        return self._upload_reply(request, entry)

    async def _bounded_json(self, request: web.Request, limit: int) -> dict[str, Any]:
        """The JSON object body, read up to ``limit`` bytes (larger: 400 naming the limit)."""
        if request.content_type != "application/json":
            raise SimError(400, f"Content-Type must be application/json, got {truncate(request.content_type, 60)!r}")
        raw = bytearray()
        while chunk := await request.content.read(CHUNK_BYTES):
            raw += chunk
            if len(raw) > limit:
                raise SimError(400, f"Request body too large: the limit is {limit} bytes")
        try:
            payload = json.loads(bytes(raw))
        except (ValueError, UnicodeDecodeError):
            raise SimError(400, "Malformed JSON in the request body") from None
        if not isinstance(payload, dict):
            raise SimError(400, "The request body must be a JSON object")
        return payload

    async def file_base64_upload(self, request: web.Request) -> web.Response:
        """JSON ``base64Data`` (plain or a ``data:`` URL), ``uploadPath``, ``fileName``."""
        account = self._account(request)
        limit = self.config.upload_base64_max_bytes
        payload = await self._bounded_json(request, limit * 4 // 3 + 64 * 1024)
        data = payload.get("base64Data")
        if not isinstance(data, str) or not data.strip():
            raise SimError(400, "base64Data is required: base64 text or a data URL")
        declared = None
        if data.startswith("data:"):
            header, _, data = data.partition(",")
            declared = header[5:].split(";", 1)[0] or None
        try:
            content = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SimError(400, "base64Data is not valid base64") from None
        staged = self.uploads.stage(limit, "base64Data")
        try:
            staged.write(content)
            entry = self._store(
                account, payload.get("uploadPath"), payload.get("fileName"), staged, suffix_of(None, declared), declared
            )
        finally:
            staged.discard()
        return self._upload_reply(request, entry)

    async def file_url_upload(self, request: web.Request) -> web.Response:
        """JSON ``fileUrl``, ``uploadPath``, ``fileName``: the file is fetched from ``fileUrl``."""
        account = self._account(request)
        payload = await self._payload(request)
        url = payload.get("fileUrl")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SimError(400, f"fileUrl is required: an absolute http(s) URL, got {truncate(repr(url), 120)}")
        check_upload_path_or_400(payload.get("uploadPath"))
        host = parsed.hostname
        if host == "invalid" or host.endswith(".invalid"):
            raise SimError(400, f"Failed to download the file from fileUrl: {truncate(str(url), 120)}")
        assert self._fetcher is not None
        staged = self.uploads.stage(self.config.upload_max_bytes, "fileUrl")
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.upload_url_timeout)
            try:
                declared = await fetch_into(
                    self._fetcher, str(url), staged, allow_internal=self.config.allow_internal_fetch, timeout=timeout
                )
            except FetchRefused as exc:
                raise SimError(400, str(exc)) from None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise SimError(400, f"Failed to download the file from fileUrl: {type(exc).__name__}") from None
            entry = self._store(
                account,
                payload.get("uploadPath"),
                payload.get("fileName"),
                staged,
                suffix_of(parsed.path, declared),
                declared,
            )
        finally:
            staged.discard()
        return self._upload_reply(request, entry)

    def _uploaded(self, path: str) -> UploadedFile | None:
        """The live upload served at ``path`` (``/tempfile/<account>/<filePath>``), if any."""
        label, _, file_path = unquote(path.removeprefix(TEMPFILE_PREFIX)).partition("/")
        ttl = self.engine.scaled(self.config.upload_retention_seconds)
        return self.uploads.find(label, file_path, ttl) if file_path else None

    async def tempfile(self, request: web.Request) -> web.StreamResponse:
        """The bytes of an upload, until it expires (then 404, as after KIE deletes it)."""
        entry = self._uploaded(request.path)
        if entry is None:
            return self.http_error(404, "File not found (uploaded files are deleted after 3 days)")
        return web.FileResponse(entry.disk_path, chunk_size=CHUNK_BYTES, headers={"Content-Type": entry.mime_type})

    # -- records ----------------------------------------------------------------------------

    @staticmethod
    def _urls(task: Task) -> tuple[str, str]:
        return f"{task.base_url}/files/{task.task_id}.mp4", f"{task.base_url}/files/{task.task_id}.png"

    def runway_record(self, task: Task) -> dict[str, Any]:
        """The ``data`` of ``record-detail`` for ``task``."""
        snap = self.engine.snapshot(task)
        video_info = None
        if snap.state == "success":
            video_url, image_url = self._urls(task)
            video_info = {
                "videoId": task.video_id,
                "taskId": task.task_id,
                "videoUrl": video_url,
                "imageUrl": image_url,
            }
        failure = task.failure if snap.state == "fail" else None
        record: dict[str, Any] = {
            "taskId": task.task_id,
            "parentTaskId": task.parent_task_id,
            "generateParam": task.params,
            "state": snap.state,
            # KIE documents generateTime as the completion time; empty until then
            "generateTime": _utc(task.t_done, "%Y-%m-%d %H:%M:%S") if snap.state in ("success", "fail") else "",
            "videoInfo": video_info,
            "failCode": failure[0] if failure else None,
            "failMsg": failure[1] if failure else "",
            "expireFlag": 1 if snap.expired else 0,
        }
        if self.config.record_style == "variant":
            record["status"] = record.pop("state")
            info = record.pop("videoInfo") or {}
            record["videoUrl"], record["imageUrl"] = info.get("videoUrl", ""), info.get("imageUrl", "")
            record["failCode"] = str(failure[0]) if failure else ""
        elif self.config.record_style == "ids":
            return self._with_ids(record)
        return record

    @staticmethod
    def _with_ids(record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as one of KIE's current examples shows it: ``id`` and ``parentId``, no ``taskId``."""
        parent = record.pop("parentTaskId") or 0
        shaped = {"id": record.pop("taskId"), "parentId": parent, **record}
        shaped["generateParam"] = {**record["generateParam"], "parentId": parent}
        if shaped["videoInfo"]:
            shaped["videoInfo"] = {k: v for k, v in shaped["videoInfo"].items() if k != "taskId"}
        return shaped

    def aleph_record(self, task: Task) -> dict[str, Any]:
        """The ``data`` of Aleph ``record-info`` for ``task``."""
        snap = self.engine.snapshot(task)
        response = None
        if snap.state == "success":
            video_url, image_url = self._urls(task)
            response = {"taskId": task.task_id, "resultVideoUrl": video_url, "resultImageUrl": image_url}
        failure = task.failure if snap.state == "fail" else None
        flag: int | str = 1 if snap.state == "success" else 0
        if failure and self.config.aleph_failure_flags:
            flag = 2 if task.create_failed else 3
            if self.config.record_style == "variant":
                flag = str(flag)
        return {
            "taskId": task.task_id,
            "paramJson": json.dumps(task.params),
            "response": response,
            "successFlag": flag,
            "errorCode": failure[0] if failure else (None if self.config.record_style == "variant" else 0),
            "errorMessage": failure[1] if failure else "",
            "createTime": _utc(task.created, "%Y-%m-%dT%H:%M:%SZ"),
            "completeTime": _utc(task.t_done, "%Y-%m-%dT%H:%M:%SZ") if snap.state in ("success", "fail") else None,
        }

    # -- files ------------------------------------------------------------------------------

    def _token(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _check_link(self, request: web.Request, path: str) -> None:
        token, expires = request.query.get("token"), request.query.get("expires")
        if token is None and expires is None:
            return
        if not token or not expires or not expires.isdigit():
            raise web.HTTPForbidden(reason="Invalid download link")
        if not hmac.compare_digest(token, self._token(path, int(expires))):
            raise web.HTTPForbidden(reason="Invalid download link")
        if int(expires) < self.engine.clock():
            raise web.HTTPForbidden(reason="Download link expired")

    async def files(self, request: web.Request) -> web.Response:
        """A task's MP4 or PNG; a ``token``/``expires`` pair from download-url is checked when present."""
        match = FILE_NAME.match(request.match_info["name"])
        task = self.engine.find(match.group(1)) if match else None
        snap = self.engine.snapshot(task) if task else None
        if match is None or task is None or snap is None or snap.state != "success":
            raise web.HTTPNotFound()
        if snap.expired:
            return self.http_error(410, "The file has expired and was deleted")
        try:
            self._check_link(request, request.path)
        except web.HTTPForbidden as exc:
            return self.http_error(403, exc.reason)
        if match.group(2) == "png":
            data, content_type = png_bytes(), "image/png"
        else:
            data, content_type = mp4_bytes(task.duration, self.config.video_size_bytes), "video/mp4"
        return self._ranged(request, data, content_type)

    def _ranged(self, request: web.Request, data: bytes, content_type: str) -> web.Response:
        headers = {"Accept-Ranges": "bytes"}
        if "Range" not in request.headers:
            return web.Response(body=data, content_type=content_type, headers=headers)
        size = len(data)
        try:
            start, stop, _ = request.http_range.indices(size)
        except ValueError:
            start, stop = size, size
        if start >= size or stop <= start:
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        return web.Response(status=206, body=data[start:stop], content_type=content_type, headers=headers)
