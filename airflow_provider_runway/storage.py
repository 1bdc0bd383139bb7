"""Persist a finished task's video and thumbnail to any store Airflow's ``ObjectStoragePath`` reaches.

KIE deletes generated files after 14 days and its direct links live 20 minutes, so a pipeline that
keeps only a URL loses its output. :func:`persist_task_result` copies the files into a destination
such as ``file:///data/videos/``, ``s3://bucket/prefix/`` or ``memory://scratch/``:

* files are named from the task id, reduced to ``[A-Za-z0-9._-]`` so no id can leave the destination;
* the body is streamed in chunks (memory stays flat whatever the size) with a plain HTTP session that
  never carries the KIE API key;
* a lapsed link (HTTP 403/404/410, or a task older than the link lifetime) is replaced by a fresh one
  from the API's ``download-url`` endpoint;
* status, content type and a size cap are checked before and while reading;
* local files are written under a temporary name and renamed into place; object stores, which have no
  rename, are written directly (an upload only becomes visible once complete) and the size verified;
* a file already present with the remote size is not downloaded again, so a retried task is cheap.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import RunwayError, RunwayNotFoundError, RunwayResultExpiredError
from airflow_provider_runway.core.results import RunwayTask, parse_time
from airflow_provider_runway.core.wire import DOWNLOAD_LINK_TTL_SECONDS

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from airflow_provider_runway.hooks.runway import RunwayHook

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 500 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: (connect, read) timeouts of the file host, in seconds.
DOWNLOAD_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Statuses a file host answers for a link that has lapsed; a fresh link is requested once.
LAPSED_STATUSES = frozenset({403, 404, 410})
#: Protocols with an atomic rename; elsewhere the file is written in place.
RENAMING_PROTOCOLS = frozenset({"file", "local"})
VIDEO_TYPES = ("video/", "application/octet-stream")
IMAGE_TYPES = ("image/",)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")


class RunwayDownloadError(RunwayError):
    """A result file could not be stored; ``retryable`` tells whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def safe_file_stem(task_id: str) -> str:
    """The file name stem for ``task_id``: only ``[A-Za-z0-9._-]``, never a path component.

    Characters outside the set and leading dots are dropped, and runs of dots become one. When the
    id changed, a short hash of the original is appended, so two different ids never share a file.

    :raises RunwayDownloadError: when nothing usable is left (empty, ``.``, ``..``, only dots).
    """
    if not isinstance(task_id, str):
        raise RunwayDownloadError(f"Task id must be a string, got {type(task_id).__name__}")
    stem = _DOTS.sub(".", _UNSAFE.sub("", task_id)).lstrip(".")
    if not stem.strip("."):
        raise RunwayDownloadError(f"Task id {task_id[:80]!r} cannot be used as a file name")
    if stem != task_id:
        stem = f"{stem[:100]}-{hashlib.sha256(task_id.encode()).hexdigest()[:10]}"
    return stem


def redact_url(url: str) -> str:
    """``url`` without query string, fragment and user info: signed links carry tokens there."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_source(url: Any, what: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise RunwayDownloadError(f"No {what} URL to download")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RunwayDownloadError(f"Refusing to download the {what} from {redact_url(url)!r}: only http(s) sources")
    return url.strip()


def _as_task(task: Mapping[str, Any] | RunwayTask) -> Mapping[str, Any]:
    if isinstance(task, RunwayTask):
        return task.to_dict()
    if not isinstance(task, Mapping):
        raise RunwayDownloadError(f"Expected the task dict of a Runway operator or sensor, got {type(task).__name__}")
    return task


def _check_task(task: Mapping[str, Any]) -> str:
    task_id = task.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise RunwayDownloadError("The task dict carries no task_id")
    if task.get("expired"):
        raise RunwayResultExpiredError(
            f"The result of Runway task {task_id} has expired: KIE deletes generated files after 14 days"
        )
    state = task.get("state")
    if state is not None and state != "succeeded":
        raise RunwayDownloadError(f"Runway task {task_id} has not succeeded (state {state!r}); nothing to download")
    return task_id


def link_is_stale(task: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether the task's stored links are older than a ``download-url`` link lives."""
    stamp = parse_time(task.get("completed_at")) or parse_time(task.get("created_at"))
    if stamp is None:
        return False
    current = time.time() if now is None else now
    return current - stamp.timestamp() > DOWNLOAD_LINK_TTL_SECONDS


def resolve_destination(destination: str | ObjectStoragePath) -> ObjectStoragePath:
    """The destination as an ``ObjectStoragePath``; a bare local path means ``file://``."""
    if isinstance(destination, ObjectStoragePath):
        return destination
    if not isinstance(destination, str) or not destination.strip():
        raise RunwayDownloadError(f"Destination must be an ObjectStoragePath or a URL string, got {destination!r}")
    text = destination.strip()
    if "://" not in text:
        if not text.startswith("/"):
            raise RunwayDownloadError(f"Destination {text!r} must be a URL (file://, s3://...) or an absolute path")
        text = f"file://{text}"
    return ObjectStoragePath(text)


def _filesystem(path: ObjectStoragePath) -> AbstractFileSystem:
    try:
        return path.fs
    except ValueError:
        # Airflow registers only schemes its providers know; fall back to fsspec's own
        # implementation (e.g. memory://) when no connection is involved.
        if path.conn_id:
            raise
        import fsspec

        return fsspec.filesystem(path.protocol)


@dataclass(frozen=True)
class _Target:
    kind: str
    source: str
    path: ObjectStoragePath
    accepted_types: tuple[str, ...]


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


class _Downloader:
    """Streams result files into a store; one plain HTTP session, no API credentials."""

    def __init__(self, hook: RunwayHook, task_id: str, *, stale: bool, max_bytes: int, chunk_size: int) -> None:
        self.hook = hook
        self.task_id = task_id
        self.stale = stale
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.session = requests.Session()
        self.session.headers.update(
            {"User-Agent": f"airflow-provider-runway/{__version__}", "Accept-Encoding": "identity"}
        )

    def close(self) -> None:
        self.session.close()

    def fresh_link(self, source: str) -> str:
        log.info("Requesting a fresh download link for task %s (%s)", self.task_id, redact_url(source))
        try:
            link = self.hook.get_download_url(source)
        except RunwayNotFoundError as err:
            raise RunwayResultExpiredError(
                f"KIE no longer has the files of task {self.task_id} ({err.remote_message}); "
                "generated files are deleted after 14 days"
            ) from err
        return _check_source(link, "fresh download")

    def persist(self, target: _Target) -> int:
        fs = _filesystem(target.path)
        link = self.fresh_link(target.source) if self.stale else target.source
        refreshed = self.stale
        existing = _existing_size(fs, target.path.path)
        if existing is not None and self._remote_size(link) == existing:
            log.info(
                "Skipping %s of task %s: %s already holds %d bytes", target.kind, self.task_id, target.path, existing
            )
            return existing
        response = self._get(link)
        if response.status_code in LAPSED_STATUSES and not refreshed:
            response.close()
            log.info("Stored %s link of task %s answered HTTP %d", target.kind, self.task_id, response.status_code)
            response = self._get(self.fresh_link(target.source))
        with response:
            expected = self._check_response(target, response)
            if existing is not None and expected == existing:
                log.info("Skipping %s of task %s: %s already complete", target.kind, self.task_id, target.path)
                return existing
            return self._write(target, fs, response, expected)

    def _remote_size(self, link: str) -> int | None:
        """Remote size from a HEAD request; ``None`` when the host does not tell (a GET decides then)."""
        try:
            response = self.session.head(link, timeout=DOWNLOAD_TIMEOUT, allow_redirects=True)
        except requests.RequestException:
            return None
        with response:
            return _content_length(response) if response.status_code == 200 else None

    def _get(self, link: str) -> requests.Response:
        try:
            return self.session.get(link, stream=True, timeout=DOWNLOAD_TIMEOUT)
        except requests.RequestException as err:
            raise RunwayDownloadError(
                f"Download from {redact_url(link)} failed: {type(err).__name__}", retryable=True
            ) from None

    def _check_response(self, target: _Target, response: requests.Response) -> int | None:
        where = f"{target.kind} of task {self.task_id} ({redact_url(response.url or target.source)})"
        status = response.status_code
        if status in (404, 410):
            raise RunwayResultExpiredError(
                f"The {where} is gone (HTTP {status}) even with a fresh download link; "
                "KIE deletes generated files after 14 days"
            )
        if status != 200:
            raise RunwayDownloadError(f"Downloading the {where} failed: HTTP {status}", retryable=status >= 500)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content_type.startswith(target.accepted_types):
            raise RunwayDownloadError(
                f"Refusing the {where}: content type {content_type or 'missing'!r}, "
                f"expected {' or '.join(t + '*' if t.endswith('/') else t for t in target.accepted_types)}"
            )
        expected = _content_length(response)
        if expected is not None and expected > self.max_bytes:
            raise RunwayDownloadError(f"Refusing the {where}: {expected} bytes exceed the cap of {self.max_bytes}")
        return expected

    def _write(self, target: _Target, fs: AbstractFileSystem, response: requests.Response, expected: int | None) -> int:
        final = target.path.path
        renaming = target.path.protocol in RENAMING_PROTOCOLS
        parent = final.rsplit("/", 1)[0]
        if renaming:
            fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.{final.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:12]}.part" if renaming else final
        try:
            written = self._copy(response, fs, temporary, target.kind)
            if expected is not None and written != expected:
                raise RunwayDownloadError(
                    f"The {target.kind} of task {self.task_id} was cut short: {written} of {expected} bytes",
                    retryable=True,
                )
            if renaming:
                fs.mv(temporary, final)
            elif fs.size(final) != written:
                raise RunwayDownloadError(
                    f"The store holds {fs.size(final)} bytes for {target.path}, {written} were written", retryable=True
                )
        except BaseException:
            _remove_quietly(fs, temporary)
            raise
        log.info("Stored %s of task %s at %s (%d bytes)", target.kind, self.task_id, target.path, written)
        return written

    def _copy(self, response: requests.Response, fs: AbstractFileSystem, path: str, kind: str) -> int:
        written = 0
        try:
            with fs.open(path, "wb") as out:
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    written += len(chunk)
                    if written > self.max_bytes:
                        raise RunwayDownloadError(
                            f"Refusing the {kind} of task {self.task_id}: more than the cap of {self.max_bytes} bytes"
                        )
                    out.write(chunk)
        except requests.RequestException as err:
            raise RunwayDownloadError(
                f"Download of the {kind} of task {self.task_id} broke off after {written} bytes: {type(err).__name__}",
                retryable=True,
            ) from None
        return written


def _existing_size(fs: AbstractFileSystem, path: str) -> int | None:
    try:
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        return None
    size = info.get("size")
    return int(size) if info.get("type") == "file" and isinstance(size, int) else None


def _remove_quietly(fs: AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # the original error matters more than a failed cleanup
        log.warning("Could not remove the incomplete file %s", path, exc_info=True)


def persist_task_result(
    task: Mapping[str, Any] | RunwayTask,
    destination: str | ObjectStoragePath,
    *,
    hook: RunwayHook,
    include_thumbnail: bool = True,
    max_bytes: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, Any]:
    """Copy a succeeded task's video (and thumbnail) into ``destination``.

    :param task: the normalised task dict (``RunwayTask.to_dict()``, or an operator's return value),
        or a :class:`RunwayTask`.
    :param destination: a folder: an ``ObjectStoragePath`` or a URL such as ``file:///data/videos/``,
        ``s3://bucket/prefix/``. Files are stored as ``<task id>.mp4`` and ``<task id>.png``.
    :param hook: a :class:`~airflow_provider_runway.hooks.runway.RunwayHook`, used only to ask for a
        fresh direct link when the stored one has lapsed. The file host never sees its API key.
    :param include_thumbnail: also store the thumbnail when the task has one.
    :param max_bytes: refuse files larger than this (default 500 MB).
    :param chunk_size: bytes read and written at a time.
    :return: ``{"video_path", "video_size", "thumbnail_path", "thumbnail_size"}``; the thumbnail
        entries are ``None`` when not stored.
    :raises RunwayResultExpiredError: the task's files were deleted by KIE.
    :raises RunwayDownloadError: any other reason the files could not be stored.
    """
    record = _as_task(task)
    task_id = _check_task(record)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    if limit <= 0 or chunk_size <= 0:
        raise RunwayDownloadError(f"max_bytes and chunk_size must be positive (got {limit}, {chunk_size})")
    folder = resolve_destination(destination)
    stem = safe_file_stem(task_id)
    targets = [_Target("video", _check_source(record.get("video_url"), "video"), folder / f"{stem}.mp4", VIDEO_TYPES)]
    image_url = record.get("image_url")
    if include_thumbnail and image_url:
        targets.append(_Target("thumbnail", _check_source(image_url, "thumbnail"), folder / f"{stem}.png", IMAGE_TYPES))
    elif include_thumbnail:
        log.info("Task %s has no thumbnail; storing the video only", task_id)
    downloader = _Downloader(hook, task_id, stale=link_is_stale(record), max_bytes=limit, chunk_size=chunk_size)
    result: dict[str, Any] = {"video_path": None, "video_size": None, "thumbnail_path": None, "thumbnail_size": None}
    try:
        for target in targets:
            result[f"{target.kind}_size"] = downloader.persist(target)
            result[f"{target.kind}_path"] = str(target.path)
    finally:
        downloader.close()
    return result
