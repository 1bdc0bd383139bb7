"""Files uploaded through the simulated KIE File Upload API: kept on disk, expired after a while.

Uploads are written to a staging file chunk by chunk and moved into place once complete, so a
large upload never sits in memory and a failed one leaves nothing behind. A file is addressed by
its account and its ``filePath`` (``uploadPath/fileName``): the same path again replaces it, as
KIE documents.

The URL upload fetches ``fileUrl`` itself and serves the bytes to anyone at ``/tempfile/...``, so it
refuses internal addresses (loopback, private, link-local such as 169.254.169.254, unique-local, ...),
checked on every redirect hop and on the very addresses it connects to, unless the simulator was
started with ``--allow-internal-fetch``.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

#: Paths of KIE's upload endpoints (served on the simulator's port; KIE's host is kieai.redpandaai.co).
FILE_STREAM_UPLOAD_PATH = "/api/file-stream-upload"
FILE_URL_UPLOAD_PATH = "/api/file-url-upload"
FILE_BASE64_UPLOAD_PATH = "/api/file-base64-upload"
UPLOAD_PATHS: tuple[str, ...] = (FILE_STREAM_UPLOAD_PATH, FILE_URL_UPLOAD_PATH, FILE_BASE64_UPLOAD_PATH)
#: Where uploaded files are served (KIE: https://tempfile.redpandaai.co/...).
TEMPFILE_PREFIX = "/tempfile/"
UPLOAD_SUCCESS_MESSAGE = "File uploaded successfully"
CHUNK_BYTES = 64 * 1024
#: Most redirects the URL upload follows from ``fileUrl``.
MAX_FETCH_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")


class UploadRejected(ValueError):
    """An upload request KIE would answer with code 400; the message names the field."""


def check_upload_path(value: object) -> str:
    """``uploadPath``: required, relative, no leading or trailing slash, no ``.``/``..`` segments."""
    if not isinstance(value, str) or not value.strip():
        raise UploadRejected("uploadPath is required, e.g. images/user-uploads")
    if value.startswith("/") or value.endswith("/"):
        raise UploadRejected(f"uploadPath must not start or end with '/': {value[:100]!r}")
    if len(value) > 500 or not all(_SEGMENT.match(part) and part not in (".", "..") for part in value.split("/")):
        raise UploadRejected(f"uploadPath has an invalid segment: {value[:100]!r}")
    return value


def check_file_name(value: object, default_suffix: str) -> str:
    """``fileName`` when given (one path segment), else a random name with ``default_suffix``."""
    if value is None or value == "":
        return f"{uuid.uuid4().hex}{default_suffix}"
    if not isinstance(value, str) or not _SEGMENT.match(value) or value in (".", ".."):
        raise UploadRejected(f"fileName must be a plain file name with an extension: {str(value)[:100]!r}")
    return value


def suffix_of(name: str | None, mime_type: str | None = None) -> str:
    """Extension of ``name``, else one for ``mime_type``, else ``""``."""
    if name:
        suffix = Path(name.split("?", 1)[0]).suffix
        if suffix and len(suffix) <= 10:
            return suffix.lower()
    if mime_type:
        return mimetypes.guess_extension(mime_type.split(";", 1)[0].strip()) or ""
    return ""


def mime_type_of(file_name: str, declared: str | None = None) -> str:
    guessed = mimetypes.guess_type(file_name)[0]
    if guessed:
        return guessed
    if declared and "/" in declared and declared.split(";", 1)[0].strip() != "application/octet-stream":
        return declared.split(";", 1)[0].strip()
    return "application/octet-stream"


@dataclass
class UploadedFile:
    """One stored upload. Times are real epoch seconds."""

    label: str
    file_path: str
    disk_path: Path
    size: int
    mime_type: str
    uploaded_at: float


class Staged:
    """A staging file that receives an upload chunk by chunk, with a size limit."""

    def __init__(self, directory: Path, limit: int, field: str) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="incoming-")
        self.path = Path(name)
        self.handle: BinaryIO = os.fdopen(fd, "wb")
        self.size = 0
        self.limit = limit
        self.field = field
        self.too_large = False
        self.committed = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; past the limit the bytes are dropped and :attr:`too_large` is set."""
        self.size += len(chunk)
        if self.size > self.limit:
            self.too_large = True
            return
        self.handle.write(chunk)

    def check(self) -> None:
        self.handle.close()
        if self.too_large:
            raise UploadRejected(f"{self.field} is too large: {self.size} bytes, the limit is {self.limit} bytes")
        if self.size == 0:
            raise UploadRejected(f"{self.field} is empty")

    def discard(self) -> None:
        """Remove the staging file unless it was moved into place."""
        if not self.handle.closed:
            self.handle.close()
        if not self.committed:
            self.path.unlink(missing_ok=True)


class UploadStore:
    """Uploaded files of every account, under ``root`` (a temporary directory unless given)."""

    def __init__(self, root: str | None, clock: Callable[[], float]) -> None:
        self._owned = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="runway-sim-uploads-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.files: dict[tuple[str, str], UploadedFile] = {}

    def stage(self, limit: int, field: str) -> Staged:
        return Staged(self.root, limit, field)

    def commit(self, label: str, upload_path: str, file_name: str, staged: Staged, mime_type: str) -> UploadedFile:
        """Move a complete staging file into place (replacing an earlier file of the same path)."""
        file_path = f"{upload_path}/{file_name}"
        target = self.root / label / file_path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        staged.committed = True
        now = self.clock()
        entry = UploadedFile(label, file_path, target, staged.size, mime_type, now)
        self.files[(label, file_path)] = entry
        return entry

    def find(self, label: str, file_path: str, ttl: float) -> UploadedFile | None:
        """The file, unless unknown or older than ``ttl`` real seconds (an expired file is deleted here)."""
        entry = self.files.get((label, file_path))
        if entry is None:
            return None
        if self.clock() >= entry.uploaded_at + ttl:
            del self.files[(label, file_path)]
            entry.disk_path.unlink(missing_ok=True)
            return None
        return entry

    def clear(self) -> None:
        """Delete every upload."""
        for entry in self.files.values():
            entry.disk_path.unlink(missing_ok=True)
        self.files.clear()

    def close(self) -> None:
        """Delete every upload, and the directory when it is a temporary one."""
        self.clear()
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- URL upload


class FetchRefused(UploadRejected):
    """The URL upload will not fetch ``fileUrl`` (or a hop it redirects to); the message says why."""


def is_internal_address(address: str) -> bool:
    """Whether ``address`` is anything but a public unicast address.

    Loopback, private, link-local (the cloud metadata address 169.254.169.254 included), unique-local,
    shared (100.64/10), reserved, multicast and unspecified addresses are internal; an IPv4-mapped IPv6
    address is judged as its IPv4 address. Anything that does not parse is treated as internal.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _refusal(host: str, address: str) -> FetchRefused:
    shown = host if host == address else f"{host} ({address})"
    return FetchRefused(
        f"Failed to download the file from fileUrl: {shown[:120]} is an internal address; "
        "runway-sim fetches internal addresses only when started with --allow-internal-fetch"
    )


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host with any internal address, so the addresses checked
    are the ones connected to (no second lookup a rebinding DNS server could answer differently)."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
        results = await self.inner.resolve(host, port, family)
        for result in results:
            if is_internal_address(str(result["host"])):
                raise _refusal(host, str(result["host"]))
        return results

    async def close(self) -> None:
        await self.inner.close()


def new_fetcher(*, allow_internal: bool, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The session the URL upload fetches with: internal addresses refused unless ``allow_internal``.

    ``resolver`` replaces the system's (tests stub it); proxies from the environment are never used.
    """
    if not allow_internal:
        resolver = GuardedResolver(resolver)
    connector = aiohttp.TCPConnector(resolver=resolver) if resolver is not None else aiohttp.TCPConnector()
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def _check_hop(url: URL, allow_internal: bool) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchRefused(f"Failed to download the file from fileUrl: a redirect to {str(url)[:120]!r}")
    if allow_internal:
        return
    try:
        ipaddress.ip_address(url.host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks the addresses it resolves to
    if is_internal_address(url.host):  # an address literal is connected to without the resolver
        raise _refusal(url.host, url.host)


async def fetch_into(
    fetcher: aiohttp.ClientSession,
    url: str,
    staged: Staged,
    *,
    allow_internal: bool,
    timeout: aiohttp.ClientTimeout,
) -> str | None:
    """Fetch ``url`` into ``staged``, following at most :data:`MAX_FETCH_REDIRECTS` redirects, each hop checked.

    :returns: the ``Content-Type`` the source declared.
    :raises FetchRefused: for an internal address (unless ``allow_internal``), a redirect to something
        other than http(s), too many redirects, or an answer other than 200.
    """
    target = URL(url)
    for _ in range(MAX_FETCH_REDIRECTS + 1):
        _check_hop(target, allow_internal)
        async with fetcher.get(target, allow_redirects=False, timeout=timeout) as response:
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                try:
                    target = response.url.join(URL(location))
                except ValueError:
                    message = f"Failed to download the file from fileUrl: a redirect to {location[:120]!r}"
                    raise FetchRefused(message) from None
                continue
            if response.status != 200:
                raise FetchRefused(f"Failed to download the file from fileUrl: HTTP {response.status}")
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                staged.write(chunk)
                if staged.too_large:
                    break
            return response.headers.get("Content-Type")
    raise FetchRefused(f"Failed to download the file from fileUrl: more than {MAX_FETCH_REDIRECTS} redirects")
