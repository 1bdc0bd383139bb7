"""Persist a finished task's video and thumbnail to any store Airflow's ``ObjectStoragePath`` reaches.

KIE deletes generated files after 14 days and its direct links live 20 minutes, so a pipeline that
keeps only a URL loses its output. :func:`persist_task_result` copies the files into a destination
such as ``file:///data/videos/``, ``s3://bucket/prefix/`` or ``memory://scratch/``:

* files are named from the task id, reduced to ``[A-Za-z0-9._-]`` so no id can leave the destination;
* the body is streamed in chunks (memory stays flat whatever the size) with a plain HTTP session that
  never carries the KIE API key, reads no ``.netrc`` or proxy settings from the environment, and
  refuses any ``Content-Encoding`` but identity (nothing is decompressed);
* redirects are followed by hand, at most 5; every hop must be http(s) and must not resolve to a
  loopback, private, link-local or reserved address, unless it is the API's own host (so the
  simulator on loopback works as is) or a host named in the connection extra
  ``download_allowed_hosts``. The connection is made to an address that was checked, so a name
  cannot resolve elsewhere in between;
* each file has an overall deadline (default 30 minutes), redirects and a fresh link included;
* a lapsed link (HTTP 403/404/410, or a task older than the link lifetime) is replaced by a fresh one
  from the API's ``download-url`` endpoint;
* status, content type and a size cap are checked before and while reading;
* every store is written under a temporary name, then moved into place (an atomic rename on local
  disks, a copy on object stores), so a failed attempt never removes a good copy already there;
* a file already present with the remote size is not downloaded again, so a retried task is cheap.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from airflow.providers.common.compat.sdk import ObjectStoragePath
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import RunwayError, RunwayNotFoundError, RunwayResultExpiredError
from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.core.naming import safe_file_stem
from airflow_provider_runway.core.results import RunwayTask, parse_time
from airflow_provider_runway.core.wire import DOWNLOAD_LINK_TTL_SECONDS
from airflow_provider_runway.openlineage.hook_lineage import report_transfer
from airflow_provider_runway.transfer._fs import filesystem as _filesystem

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
#: Protocols on local disk, where the folder is created first and the move is an atomic rename.
RENAMING_PROTOCOLS = frozenset({"file", "local"})
#: Redirects followed for one file before giving up.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Seconds one file may take, redirects and a fresh link included.
DEFAULT_FILE_DEADLINE = 30 * 60.0
VIDEO_TYPES = ("video/", "application/octet-stream")
IMAGE_TYPES = ("image/",)


class RunwayDownloadError(RunwayError):
    """A result file could not be stored; ``retryable`` tells whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


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


# ------------------------------------------------------------------ where a download may go


def _resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in resolver order (tests replace this function)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise RunwayDownloadError(f"Could not resolve the file host {host!r}: {err}", retryable=True) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_internal_address(address: str) -> bool:
    """Whether ``address`` is loopback, private, link-local, reserved or otherwise not on the internet.

    IPv4 addresses embedded in IPv6 ones (mapped, 6to4, NAT64) are judged by the IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_internal_address(str(embedded))
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return host, port


class _AddressGuard:
    """Decides which hosts a download may connect to; the exemptions are read only when needed.

    :param exemptions: returns the host names that may resolve to internal addresses (the API's own
        host and the connection extra ``download_allowed_hosts``); called once, on the first internal address.
    """

    def __init__(self, exemptions: Callable[[], frozenset[str]]) -> None:
        self._read_exemptions = exemptions
        self._exemptions: frozenset[str] | None = None
        self._lock = threading.Lock()

    def _exempt(self, host: str) -> bool:
        with self._lock:
            if self._exemptions is None:
                self._exemptions = self._read_exemptions()
        return host.lower() in self._exemptions

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; raises when any of them is internal and not exempt."""
        host = host.strip("[]").rstrip(".")
        addresses = _resolve(host, port)
        if not addresses:
            raise RunwayDownloadError(f"The file host {host!r} resolves to no address", retryable=True)
        internal = [address for address in addresses if is_internal_address(address)]
        if internal and not self._exempt(host):
            raise RunwayDownloadError(
                f"Refusing to connect to {host}: it resolves to {internal[0]}, a loopback, private, link-local "
                "or reserved address (list the host in the connection extra download_allowed_hosts to allow it)"
            )
        return addresses

    def check(self, url: str, what: str) -> None:
        """Refuse ``url`` before any connection: a scheme other than http(s), or an internal address."""
        try:
            parts = urlsplit(url)
            host, port = _host_and_port(url)
        except ValueError:
            raise RunwayDownloadError(f"Refusing to download the {what} from {redact_url(url)!r}: bad URL") from None
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise RunwayDownloadError(f"Refusing to download the {what} from {redact_url(url)!r}: only http(s) sources")
        try:
            self.addresses(host, port)
        except RunwayDownloadError as err:
            raise RunwayDownloadError(
                f"Refusing to download the {what} from {redact_url(url)}: {err.message}", retryable=err.retryable
            ) from None


def _guarded_connect(connection: HTTPConnection, guard: _AddressGuard) -> socket.socket:
    """``HTTPConnection._new_conn`` connecting only to the addresses ``guard`` checked."""
    last: OSError | None = None
    for address in guard.addresses(connection.host, connection.port):
        try:
            return create_connection(
                (address, connection.port),
                connection.timeout,
                source_address=connection.source_address,
                socket_options=connection.socket_options,
            )
        except TimeoutError as err:
            raise ConnectTimeoutError(
                connection, f"Connection to {connection.host} timed out. (connect timeout={connection.timeout})"
            ) from err
        except OSError as err:
            last = err
    raise NewConnectionError(connection, f"Failed to establish a new connection: {last}")


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose connections go only to addresses the guard accepted (no DNS change in between)."""

    def __init__(self, guard: _AddressGuard) -> None:
        class GuardedHTTPConnection(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return _guarded_connect(self, guard)

        class GuardedHTTPSConnection(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                return _guarded_connect(self, guard)

        class GuardedHTTPPool(HTTPConnectionPool):
            ConnectionCls = GuardedHTTPConnection

        class GuardedHTTPSPool(HTTPSConnectionPool):
            ConnectionCls = GuardedHTTPSConnection

        self._pool_classes = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pool_classes)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise RunwayDownloadError("Downloads do not go through proxies")


class _PlainSession(requests.Session):
    """A session that leaves redirects alone: ``requests`` would otherwise read a redirect's whole body
    (decoded, unbounded) to prepare the next hop even with ``allow_redirects=False``."""

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


# ------------------------------------------------------------------ downloading


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


class _Watchdog:
    """Aborts a blocked read when a file's deadline passes (urllib3's ``HTTPResponse.shutdown``)."""

    def __init__(self, response: requests.Response, seconds: float) -> None:
        self.fired = False
        self._raw = response.raw
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            self._raw.shutdown()
        except Exception:  # a mocked or already released response: the read loop checks the clock too
            log.debug("Could not shut down a late download", exc_info=True)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _Downloader:
    """Streams result files into a store; one plain HTTP session, no API credentials."""

    def __init__(
        self,
        hook: RunwayHook,
        task_id: str,
        *,
        stale: bool,
        max_bytes: int,
        chunk_size: int,
        file_deadline: float = DEFAULT_FILE_DEADLINE,
    ) -> None:
        self.hook = hook
        self.task_id = task_id
        self.stale = stale
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.file_deadline = file_deadline
        self.deadline = time.monotonic() + file_deadline
        self.guard = _AddressGuard(self._exemptions)
        self.session = _PlainSession()
        self.session.trust_env = False  # no .netrc credentials, no proxies from the environment
        self.session.headers.update(
            {"User-Agent": f"airflow-provider-runway/{__version__}", "Accept-Encoding": "identity"}
        )
        adapter = _GuardedAdapter(self.guard)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def _exemptions(self) -> frozenset[str]:
        """The API's own host and the extra's ``download_allowed_hosts``."""
        hosts: set[str] = set()
        base_url = getattr(self.hook, "base_url", None)
        if isinstance(base_url, str) and base_url:
            hosts.add(_host_and_port(base_url)[0].lower())
        allowed = getattr(self.hook, "get_download_allowed_hosts", None)
        if callable(allowed):
            hosts.update(str(host).lower().rstrip(".") for host in allowed())
        return frozenset(hosts)

    def _remaining(self, what: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RunwayDownloadError(
                f"The {what} of task {self.task_id} was not stored within {self.file_deadline:g} s", retryable=True
            )
        return remaining

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
        self.deadline = time.monotonic() + self.file_deadline
        fs = _filesystem(target.path)
        link = self.fresh_link(target.source) if self.stale else target.source
        refreshed = self.stale
        existing = _existing_size(fs, target.path.path)
        if existing is not None and self._remote_size(link, target.kind) == existing:
            log.info(
                "Skipping %s of task %s: %s already holds %d bytes", target.kind, self.task_id, target.path, existing
            )
            return existing
        response = self._get(link, target.kind)
        if response.status_code in LAPSED_STATUSES and not refreshed:
            response.close()
            log.info("Stored %s link of task %s answered HTTP %d", target.kind, self.task_id, response.status_code)
            response = self._get(self.fresh_link(target.source), target.kind)
        with response, _Watchdog(response, self._remaining(target.kind)) as watchdog:
            expected = self._check_response(target, response)
            if existing is not None and expected == existing:
                log.info("Skipping %s of task %s: %s already complete", target.kind, self.task_id, target.path)
                return existing
            return self._write(target, fs, response, expected, watchdog)

    def _request(self, method: str, link: str, kind: str) -> requests.Response:
        """``method`` on ``link``, following at most 5 redirects by hand, each hop checked first."""
        url = link
        for _hop in range(MAX_REDIRECTS + 1):
            self.guard.check(url, kind)
            remaining = self._remaining(kind)
            timeout = (min(DOWNLOAD_TIMEOUT[0], remaining), min(DOWNLOAD_TIMEOUT[1], remaining))
            response = self.session.request(method, url, stream=True, timeout=timeout, allow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            url = urljoin(url, location)
            log.info("The %s of task %s redirects to %s", kind, self.task_id, redact_url(url))
        raise RunwayDownloadError(
            f"Refusing the {kind} of task {self.task_id}: more than {MAX_REDIRECTS} redirects from {redact_url(link)}"
        )

    def _remote_size(self, link: str, kind: str) -> int | None:
        """Remote size from a HEAD request; ``None`` when the host does not tell (a GET decides then)."""
        try:
            response = self._request("HEAD", link, kind)
        except (requests.RequestException, RunwayDownloadError):
            return None
        with response:
            return _content_length(response) if response.status_code == 200 else None

    def _get(self, link: str, kind: str) -> requests.Response:
        try:
            return self._request("GET", link, kind)
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
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise RunwayDownloadError(f"Refusing the {where}: Content-Encoding {encoding!r}; only identity is read")
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

    def _write(
        self,
        target: _Target,
        fs: AbstractFileSystem,
        response: requests.Response,
        expected: int | None,
        watchdog: _Watchdog,
    ) -> int:
        final = target.path.path
        parent, _, name = final.rpartition("/")
        if target.path.protocol in RENAMING_PROTOCOLS:
            fs.makedirs(parent, exist_ok=True)
        # Never the final name: a failed attempt must not replace or remove a good copy already there.
        temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.part"
        try:
            written = self._copy(response, fs, temporary, target.kind, watchdog)
            if expected is not None and written != expected:
                raise RunwayDownloadError(
                    f"The {target.kind} of task {self.task_id} was cut short: {written} of {expected} bytes",
                    retryable=True,
                )
            fs.mv(temporary, final)
        except BaseException:
            _remove_quietly(fs, temporary)
            raise
        fs.invalidate_cache(final)
        stored = fs.size(final)
        if stored != written:
            raise RunwayDownloadError(
                f"The store holds {stored} bytes for {target.path}, {written} were written", retryable=True
            )
        log.info("Stored %s of task %s at %s (%d bytes)", target.kind, self.task_id, target.path, written)
        return written

    def _copy(
        self, response: requests.Response, fs: AbstractFileSystem, path: str, kind: str, watchdog: _Watchdog
    ) -> int:
        written = 0
        with fs.open(path, "wb") as out:
            while True:
                try:
                    # Raw bytes: nothing is decompressed, whatever the headers say.
                    chunk = response.raw.read(self.chunk_size, decode_content=False)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
                    self._check_deadline(kind, watchdog)
                    raise RunwayDownloadError(
                        f"Download of the {kind} of task {self.task_id} broke off after {written} bytes: "
                        f"{type(err).__name__}",
                        retryable=True,
                    ) from None
                self._check_deadline(kind, watchdog)
                if not chunk:
                    return written
                written += len(chunk)
                if written > self.max_bytes:
                    raise RunwayDownloadError(
                        f"Refusing the {kind} of task {self.task_id}: more than the cap of {self.max_bytes} bytes"
                    )
                out.write(chunk)

    def _check_deadline(self, kind: str, watchdog: _Watchdog) -> None:
        if watchdog.fired:
            self.deadline = 0.0
        self._remaining(kind)


def _existing_size(fs: AbstractFileSystem, path: str) -> int | None:
    try:
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        return None
    size = info.get("size")
    return int(size) if info.get("type") == "file" and isinstance(size, int) else None


def _remove_quietly(fs: AbstractFileSystem, path: str) -> None:
    """Remove ``path``, a temporary object this attempt created; never the final name."""
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
    file_deadline: float = DEFAULT_FILE_DEADLINE,
) -> dict[str, Any]:
    """Copy a succeeded task's video (and thumbnail) into ``destination``.

    :param task: the normalised task dict (``RunwayTask.to_dict()``, or an operator's return value),
        or a :class:`RunwayTask`.
    :param destination: a folder: an ``ObjectStoragePath`` or a URL such as ``file:///data/videos/``,
        ``s3://bucket/prefix/``. Files are stored as ``<task id>.mp4`` and ``<task id>.png``.
    :param hook: a :class:`~airflow_provider_runway.hooks.runway.RunwayHook`, used to ask for a fresh
        direct link when the stored one has lapsed and, when a file host resolves to an internal
        address, for the hosts allowed there (its own host, extra ``download_allowed_hosts``). The
        file host never sees its API key.
    :param include_thumbnail: also store the thumbnail when the task has one.
    :param max_bytes: refuse files larger than this (default 500 MB).
    :param chunk_size: bytes read and written at a time.
    :param file_deadline: seconds one file may take, redirects and a fresh link included (default 30 minutes).
    :return: ``{"video_path", "video_size", "thumbnail_path", "thumbnail_size"}``; the thumbnail
        entries are ``None`` when not stored.
    :raises RunwayResultExpiredError: the task's files were deleted by KIE.
    :raises RunwayDownloadError: any other reason the files could not be stored.
    """
    record = _as_task(task)
    task_id = _check_task(record)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    if limit <= 0 or chunk_size <= 0 or file_deadline <= 0:
        raise RunwayDownloadError(
            f"max_bytes, chunk_size and file_deadline must be positive (got {limit}, {chunk_size}, {file_deadline})"
        )
    folder = resolve_destination(destination)
    try:
        stem = safe_file_stem(task_id)
    except ValueError as err:
        raise RunwayDownloadError(str(err)) from err
    targets = [_Target("video", _check_source(record.get("video_url"), "video"), folder / f"{stem}.mp4", VIDEO_TYPES)]
    image_url = record.get("image_url")
    if include_thumbnail and image_url:
        targets.append(_Target("thumbnail", _check_source(image_url, "thumbnail"), folder / f"{stem}.png", IMAGE_TYPES))
    elif include_thumbnail:
        log.info("Task %s has no thumbnail; storing the video only", task_id)
    downloader = _Downloader(
        hook,
        task_id,
        stale=link_is_stale(record),
        max_bytes=limit,
        chunk_size=chunk_size,
        file_deadline=float(file_deadline),
    )
    result: dict[str, Any] = {"video_path": None, "video_size": None, "thumbnail_path": None, "thumbnail_size": None}
    try:
        for target in targets:
            result[f"{target.kind}_size"] = downloader.persist(target)
            result[f"{target.kind}_path"] = str(target.path)
            report_transfer(hook, target.source, target.path)
    finally:
        downloader.close()
    return result
