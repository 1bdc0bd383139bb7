"""Send generation inputs kept on local disks or in object storage to KIE's File Upload API.

KIE takes only public http(s) URLs for ``imageUrl``, ``videoUrl`` and ``referenceImage``. Its file-stream
upload (``POST /api/file-stream-upload`` on ``https://kieai.redpandaai.co``, same Bearer key) stores a file for
3 days and answers with a ``downloadUrl`` to pass instead. This module:

* resolves an input (:func:`resolve_input`): an http(s) URL is used as is; a local path, an
  ``ObjectStoragePath`` or a URL such as ``file://``, ``s3://`` or ``gs://`` becomes an :class:`InputSource`;
  anything else is refused, naming the field and what it accepts;
* checks KIE's size limits before anything is sent (:class:`UploadLimits`, 10 MB for images and videos by
  default, configurable with the connection extras ``upload_max_image_mb`` and ``upload_max_video_mb``);
* names the uploaded file from the SHA-256 of its bytes plus its extension, so a retried task overwrites
  its earlier upload instead of adding another one;
* reads the input once, in chunks, into a private copy (memory up to 1 MiB, beyond that an unnamed
  temporary file only this process can open) that is checked, hashed and sent on every attempt, so a
  file swapped or changed on disk after that read is never sent; the ``multipart/form-data`` body's
  ``Content-Length`` is known up front and memory stays flat whatever the file's size;
* maps the answer to the exceptions of :mod:`airflow_provider_runway.core.errors` and returns the
  ``downloadUrl`` after checking it is an absolute http(s) URL. The API key never appears in a message.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

import requests
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway.core.errors import (
    RunwayError,
    RunwayParameterError,
    RunwayProtocolError,
    RunwayTransportError,
    parse_envelope,
    truncate,
)
from airflow_provider_runway.core.models import is_http_url, redact_url
from airflow_provider_runway.core.retry import DEFAULT_RETRY_DELAY, call_with_retries, read_may_retry
from airflow_provider_runway.hooks.transport import read_capped, redact_error, redact_key
from airflow_provider_runway.transfer._fs import filesystem

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
FILE_STREAM_UPLOAD_PATH = "/api/file-stream-upload"
#: Connection extra naming the upload host.
UPLOAD_BASE_URL_EXTRA = "upload_base_url"
#: Folder the provider's uploads go to on KIE's file host.
DEFAULT_UPLOAD_PATH = "airflow-runway"
MIB = 1024 * 1024
#: KIE's documented input limits (File Upload API and Limits sections); a seed says 50 MB for videos.
DEFAULT_MAX_IMAGE_BYTES = 10 * MIB
DEFAULT_MAX_VIDEO_BYTES = 10 * MIB
#: Largest file :func:`upload_file` sends when no limit is given (KIE fetches URLs up to about 100 MB).
DEFAULT_MAX_UPLOAD_BYTES = 100 * MIB
DEFAULT_CHUNK_SIZE = 256 * 1024
#: Largest private copy of an input kept in memory; a larger one goes to an unnamed temporary file.
IN_MEMORY_COPY_BYTES = 1 * MIB
#: (connect, read) timeouts in seconds; the read timeout starts once the whole body is sent.
DEFAULT_UPLOAD_TIMEOUT: tuple[float, float] = (10.0, 120.0)
#: Largest successful answer read; the documented one is a few hundred bytes.
MAX_RESPONSE_BYTES = 64 * 1024

#: The fields that take an uploaded file, their wire names and the kind of file they hold.
INPUT_FIELDS: Mapping[str, tuple[str, str]] = {
    "image_url": ("imageUrl", "image"),
    "video_url": ("videoUrl", "video"),
    "reference_image": ("referenceImage", "image"),
}
ALLOWED_INPUTS = (
    "an absolute http(s) URL, a local file path, an ObjectStoragePath, "
    "or an object-storage URL such as file://, s3:// or gs://"
)

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_SAFE_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# mimetypes' answers differ between platforms; these are the types KIE's inputs come in.
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
}


class RunwayInputTooLargeError(RunwayParameterError):
    """An input file is larger than KIE accepts for its field; raised before anything is sent."""

    def __init__(self, field: str, location: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        kind = INPUT_FIELDS[field][1] if field in INPUT_FIELDS else "file"
        super().__init__(
            field,
            location,
            f"the file is {_megabytes(size)} ({size} bytes), larger than the {_megabytes(limit)} "
            f"({limit} bytes) allowed for an input {kind}",
        )


def _megabytes(size: int) -> str:
    return f"{size / MIB:.1f} MB" if size % MIB else f"{size // MIB} MB"


@dataclass(frozen=True)
class UploadLimits:
    """Largest input image and video sent to KIE, in bytes."""

    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> UploadLimits:
        """Limits from the connection extras ``upload_max_image_mb`` and ``upload_max_video_mb``."""
        return cls(
            max_image_bytes=_limit_from(extra, "upload_max_image_mb", DEFAULT_MAX_IMAGE_BYTES),
            max_video_bytes=_limit_from(extra, "upload_max_video_mb", DEFAULT_MAX_VIDEO_BYTES),
        )

    def for_field(self, field: str) -> int:
        """The limit for ``field`` (``image_url``, ``video_url`` or ``reference_image``)."""
        return self.max_video_bytes if _kind(field) == "video" else self.max_image_bytes


def _limit_from(extra: Mapping[str, Any], key: str, default: int) -> int:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        megabytes = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Runway connection extra {key}={value!r} must be a number of megabytes") from None
    if not megabytes > 0:
        raise ValueError(f"Runway connection extra {key}={value!r} must be positive")
    return int(megabytes * MIB)


def _kind(field: str) -> str:
    if field not in INPUT_FIELDS:
        raise ValueError(f"{field!r} is not an input field; expected one of {', '.join(INPUT_FIELDS)}")
    return INPUT_FIELDS[field][1]


def _scheme_of(value: Any) -> str | None:
    """The lower-cased scheme of a ``scheme://...`` string, else ``None`` (a local path, or not a string)."""
    found = _SCHEME.match(value.strip()) if isinstance(value, str) else None
    return found.group(1).lower() if found else None


#: fsspec protocols that are network transfers rather than object stores; their URLs are mistakes here.
_NOT_STORAGE = frozenset({"ftp", "ftps", "sftp", "ssh", "smb", "data", "http", "https", "git", "github"})


def _is_storage_scheme(scheme: str | None) -> bool:
    import fsspec

    return scheme not in _NOT_STORAGE and scheme in fsspec.available_protocols()


@dataclass(frozen=True)
class InputSource:
    """A file to upload: a local path or an ``ObjectStoragePath``, with its size when known."""

    location: str
    """Where the file is, for messages: an absolute path or a URL without credentials."""
    target: Path | ObjectStoragePath
    size: int | None = None

    @property
    def name(self) -> str:
        """The file's own name, extension included."""
        return self.target.name

    # ObjectStoragePath is tested first: on Airflow 2 it is a pathlib.Path subclass too.

    def open(self) -> IO[bytes]:
        """Open the file for reading in binary mode."""
        if isinstance(self.target, ObjectStoragePath):
            return cast("IO[bytes]", filesystem(self.target).open(self.target.path, "rb"))
        return self.target.open("rb")

    def is_file(self) -> bool:
        """Whether the location holds a file (not a folder, not nothing)."""
        if isinstance(self.target, ObjectStoragePath):
            return bool(filesystem(self.target).isfile(self.target.path))
        return self.target.is_file()

    def stat_size(self) -> int | None:
        """The size the store reports now, or ``None`` when it does not say."""
        if isinstance(self.target, ObjectStoragePath):
            size = filesystem(self.target).info(self.target.path).get("size")
            return size if isinstance(size, int) else None
        return self.target.stat().st_size


def as_input_source(value: Any, field: str = "source") -> InputSource:
    """``value`` (a local path, an ``ObjectStoragePath`` or a non-http URL) as an :class:`InputSource`.

    The file must exist; its size is read from the store.

    :raises RunwayParameterError: naming ``field`` when ``value`` is none of these or is not a file.
    """
    if isinstance(value, InputSource):
        return value
    target: Path | ObjectStoragePath
    scheme = _scheme_of(value)
    if isinstance(value, ObjectStoragePath):
        target, location = value, redact_url(str(value))
    elif isinstance(value, os.PathLike) or (isinstance(value, str) and scheme is None):
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise RunwayParameterError(field, value, f"must be {ALLOWED_INPUTS}")
        target = Path(text.strip()).expanduser().absolute()  # a relative path is relative to the worker's cwd
        location = str(target)
    elif not isinstance(value, str):
        raise RunwayParameterError(field, value, f"must be {ALLOWED_INPUTS}")
    elif scheme in ("http", "https"):
        raise RunwayParameterError(field, redact_url(value), "an http(s) URL is passed to KIE as is, not uploaded")
    elif scheme == "file":
        parts = urlsplit(value.strip())
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise RunwayParameterError(field, value, "a file:// URL must name a local file, e.g. file:///data/in.png")
        target = Path(unquote(parts.path))
        location = str(target)
    else:
        if not _is_storage_scheme(scheme):
            raise RunwayParameterError(
                field, redact_url(value), f"unknown storage scheme {scheme!r}; must be {ALLOWED_INPUTS}"
            )
        target, location = ObjectStoragePath(value.strip()), redact_url(value.strip())
    source = InputSource(location=location, target=target)
    try:
        is_file = source.is_file()
        size = source.stat_size() if is_file else None
    except FileNotFoundError:
        is_file, size = False, None
    except Exception as error:  # fsspec back-ends raise their own types (permissions, missing credentials)
        raise RunwayParameterError(
            field, location, f"could not be read: {type(error).__name__}: {truncate(str(error), 200)}"
        ) from None
    if not is_file:
        raise RunwayParameterError(field, location, "no such file")
    return InputSource(location=location, target=target, size=size)


def is_upload_input(value: Any, field: str) -> bool:
    """Whether ``value`` names a file to upload for ``field`` rather than a URL to pass as is; reads nothing.

    This is the DAG-parse-time check: the file itself is looked at only when the task runs, on the worker.

    :returns: ``False`` for ``None``, ``""`` and http(s) URLs (checked with the request), ``True`` for a
        local path, an ``ObjectStoragePath`` or a ``file://``, ``s3://``, ``gs://``... URL.
    :raises RunwayParameterError: naming ``field`` and what it accepts, for anything else.
    """
    _kind(field)
    if value is None or isinstance(value, InputSource):
        return value is not None
    if isinstance(value, (ObjectStoragePath, os.PathLike)):
        return True
    if not isinstance(value, str):
        raise RunwayParameterError(field, value, f"must be {ALLOWED_INPUTS}")
    scheme = _scheme_of(value)
    if scheme is None:
        text = value.strip()
        if not text:
            return False
        if not (os.path.isabs(text) or text.startswith(("~", "./", "../", ".\\", "..\\"))):
            # "example.com/cat.png" is far more likely a URL missing its scheme than a path relative to the
            # worker's working directory.
            raise RunwayParameterError(
                field, value, f"a local path must be absolute or start with ~, ./ or ../; must be {ALLOWED_INPUTS}"
            )
        return True
    if scheme in ("http", "https"):
        return False
    if scheme != "file" and not _is_storage_scheme(scheme):
        raise RunwayParameterError(
            field, redact_url(value), f"unknown storage scheme {scheme!r}; must be {ALLOWED_INPUTS}"
        )
    return True


def resolve_input(value: Any, field: str, *, limits: UploadLimits | None = None) -> InputSource | str | None:
    """What to send for the input ``field``: an http(s) URL as is, or a file to upload first.

    ``None`` and ``""`` stay ``None`` (an optional input left out). A file's size is checked against
    ``limits`` (KIE's defaults otherwise) here, before anything is sent.

    :param value: an http(s) URL, a local path (``str`` or ``os.PathLike``), an ``ObjectStoragePath``
        or a URL such as ``file:///data/in.png``, ``s3://bucket/in.png`` or ``gs://bucket/in.mp4``.
    :param field: ``image_url``, ``video_url`` or ``reference_image``.
    :raises RunwayParameterError: naming the field and what it accepts, for a value it cannot use.
    :raises RunwayInputTooLargeError: naming the field, the size and the limit, for a file too large.
    """
    _kind(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if _scheme_of(value) in ("http", "https"):
        if not is_http_url(value):
            raise RunwayParameterError(field, value, "must be an absolute http(s) URL, e.g. https://host/path")
        return str(value)
    source = as_input_source(value, field)
    limit = (limits or UploadLimits()).for_field(field)
    if source.size is not None and source.size > limit:
        raise RunwayInputTooLargeError(field, source.location, source.size, limit)
    return source


def input_url(
    value: Any,
    field: str,
    upload: Callable[[InputSource], str],
    *,
    limits: UploadLimits | None = None,
) -> str | None:
    """The URL to send for ``field``: ``value`` itself when it is an http(s) URL, else ``upload``'s answer.

    ``upload`` is typically ``lambda source: hook.upload_file(source, field=field)``.
    """
    resolved = resolve_input(value, field, limits=limits)
    if resolved is None or isinstance(resolved, str):
        return resolved
    return upload(resolved)


# ---------------------------------------------------------------------------------------------- naming


def check_upload_path(value: Any) -> str:
    """A folder on KIE's file host: ``[A-Za-z0-9._-]`` segments joined by ``/``, no leading or trailing slash."""
    allowed = "segments of A-Z a-z 0-9 . _ - joined by '/', no leading or trailing '/', no '.' or '..'"
    if not isinstance(value, str) or not value or len(value) > 200:
        raise RunwayParameterError("upload_path", value, f"must be 1 to 200 characters: {allowed}")
    if not all(_SAFE_SEGMENT.fullmatch(part) and part.strip(".") for part in value.split("/")):
        raise RunwayParameterError("upload_path", value, f"must be {allowed}")
    return value


def check_file_name(value: Any) -> str:
    """A file name for KIE's file host: ``[A-Za-z0-9._-]``, starting with a letter or digit, with an extension."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or not _SAFE_EXTENSION.search(value):
        raise RunwayParameterError(
            "file_name",
            value,
            "must be 1 to 200 characters of A-Z a-z 0-9 . _ -, start with a letter or digit and end with an "
            "extension such as .png",
        )
    return value


def sniff_mime_type(head: bytes) -> str | None:
    """The type the first bytes of a file show, for the formats KIE's inputs come in."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def _check_kind(head: bytes, field: str, location: str) -> None:
    kind = INPUT_FIELDS[field][1]
    sniffed = sniff_mime_type(head)
    # The bytes decide, not the name: a templated path must not send any other file to a public host.
    if sniffed is None or not sniffed.startswith(f"{kind}/"):
        shown = sniffed or "not a PNG, JPEG, WebP, GIF, MP4, MOV or WebM file"
        raise RunwayParameterError(field, location, f"must be an {kind}; the file is {shown}")


def check_input_kind(source: InputSource, field: str) -> None:
    """Read the first bytes of ``source``: they must show an image or a video, as ``field`` takes.

    :raises RunwayParameterError: naming ``field``, for a file of another kind or not a media file at all.
    """
    _kind(field)
    try:
        with source.open() as stream:
            head = bytes(stream.read(64))
    except OSError as error:
        raise RunwayParameterError(
            field, source.location, f"could not be read: {type(error).__name__}: {truncate(str(error), 200)}"
        ) from None
    _check_kind(head, field, source.location)


def _mime_and_extension(original_name: str, head: bytes) -> tuple[str, str]:
    suffix = PurePosixPath(original_name).suffix.lower()
    suffix = suffix if _SAFE_EXTENSION.fullmatch(suffix) else ""
    sniffed = sniff_mime_type(head)
    guessed = mimetypes.guess_type(f"x{suffix}")[0] if suffix else None
    mime = sniffed or guessed or "application/octet-stream"
    if sniffed and (not suffix or (guessed or "").split("/")[0] != sniffed.split("/")[0]):
        suffix = _EXTENSIONS.get(sniffed, suffix)
    if suffix == ".jpeg":
        suffix = ".jpg"
    return mime, suffix or ".bin"


@dataclass(frozen=True)
class PreparedUpload:
    """An input read once into a private copy, measured and hashed; every attempt sends that copy.

    Close it (or use it as a context manager) to release the copy.
    """

    source: InputSource
    size: int
    sha256: str
    file_name: str
    mime_type: str
    copy: IO[bytes]
    """The bytes read from ``source``: in memory, or in a temporary file with no name on disk."""

    def close(self) -> None:
        """Release the private copy."""
        self.copy.close()

    def __enter__(self) -> PreparedUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _private_copy() -> IO[bytes]:
    # SpooledTemporaryFile keeps up to IN_MEMORY_COPY_BYTES in memory, then moves to tempfile.TemporaryFile:
    # O_TMPFILE (or mkstemp's O_EXCL and mode 0600, unlinked at once), so no other process can open it.
    return cast("IO[bytes]", tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_COPY_BYTES, prefix="runway-upload-"))


def prepare_upload(
    source: InputSource,
    *,
    file_name: str | None = None,
    max_bytes: int | None = None,
    field: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> PreparedUpload:
    """Read ``source`` once into a private copy: its size, its SHA-256, and the name and type to upload it under.

    The path is opened once; the kind check, the hash and every send read the copy, so what is checked is
    what is sent even if the file is replaced (a symlink swapped in, say) afterwards. Without ``file_name``
    the name is ``<sha256 hex><extension>``, the extension taken from the original name or, when that has
    none or disagrees with the bytes, from the bytes themselves.

    :raises RunwayInputTooLargeError: when the file grows past ``max_bytes`` (reading stops there).
    :raises RunwayParameterError: when ``field`` takes images and the file is a video, or the reverse.
    """
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_UPLOAD_BYTES
    copy = _private_copy()
    try:
        size, digest = _copy_bounded(source, copy, limit, field, chunk_size)
        copy.seek(0)
        head = copy.read(64)
        if size == 0:
            raise RunwayParameterError(field or "source", source.location, "the file is empty")
        mime, extension = _mime_and_extension(source.name, head)
        if field is not None and field in INPUT_FIELDS:
            _check_kind(head, field, source.location)
        name = check_file_name(file_name) if file_name is not None else f"{digest}{extension}"
    except BaseException:
        copy.close()
        raise
    return PreparedUpload(source=source, size=size, sha256=digest, file_name=name, mime_type=mime, copy=copy)


def _copy_bounded(
    source: InputSource, copy: IO[bytes], limit: int, field: str | None, chunk_size: int
) -> tuple[int, str]:
    """Copy ``source`` into ``copy``, stopping past ``limit`` bytes; return the size and the SHA-256 hex."""
    label = field or "source"
    digest = hashlib.sha256()
    size = 0
    with source.open() as stream:
        while chunk := stream.read(chunk_size):
            size += len(chunk)
            if size > limit:
                if field in INPUT_FIELDS:
                    raise RunwayInputTooLargeError(label, source.location, size, limit)
                raise RunwayParameterError(
                    label, source.location, f"the file is over {_megabytes(limit)} ({limit} bytes), the upload limit"
                )
            digest.update(chunk)
            copy.write(chunk)
    return size, digest.hexdigest()


# ---------------------------------------------------------------------------------------------- the body


class MultipartBody:
    """A ``multipart/form-data`` body streamed from a prepared upload's private copy, its length known up front.

    ``requests`` sends an iterable with ``__len__`` with that ``Content-Length`` and without chunked encoding;
    the copy is read from its start, ``chunk_size`` bytes at a time, each time the body is iterated (each attempt).
    """

    def __init__(
        self, prepared: PreparedUpload, fields: Mapping[str, str], *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        self.prepared = prepared
        self.chunk_size = chunk_size
        self.boundary = f"runway-{uuid.uuid4().hex}"
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        parts.append(
            (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{prepared.file_name}"\r\n'
                f"Content-Type: {prepared.mime_type}\r\n\r\n"
            ).encode()
        )
        self._preamble = b"".join(parts)
        self._epilogue = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        """The request's ``Content-Type`` header."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._preamble) + self.prepared.size + len(self._epilogue)

    def __iter__(self) -> Iterator[bytes]:
        yield self._preamble
        copy = self.prepared.copy
        copy.seek(0)
        while chunk := copy.read(self.chunk_size):
            yield chunk
        yield self._epilogue


# ---------------------------------------------------------------------------------------------- the upload


@dataclass(frozen=True)
class UploadedFile:
    """What KIE answered for an upload."""

    download_url: str
    file_name: str
    file_path: str | None
    size: int
    mime_type: str
    sha256: str


def is_kie_api(api_base_url: str) -> bool:
    """Whether ``api_base_url`` is KIE's own API (a host under ``kie.ai``), not a simulator or a gateway."""
    try:
        host = (urlsplit(api_base_url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return host == "kie.ai" or host.endswith(".kie.ai")


def check_upload_base_url(value: Any, api_base_url: str | None = None) -> str:
    """The upload host's base URL, without a trailing slash.

    When ``value`` is empty: KIE's file host (``https://kieai.redpandaai.co``) if ``api_base_url`` is KIE's
    API or not given, else ``api_base_url`` itself, so a simulator or gateway in front of the API also
    receives the uploads and no input leaves for KIE's public file host unasked.
    """
    if value in (None, ""):
        if api_base_url is None or is_kie_api(api_base_url):
            return DEFAULT_UPLOAD_BASE_URL
        value = api_base_url
    if not is_http_url(value):
        raise RunwayParameterError(UPLOAD_BASE_URL_EXTRA, value, "must be an absolute http(s) URL")
    return str(value).rstrip("/")


def plain_http_upload_warning(upload_base_url: str) -> str | None:
    """A warning to log when the upload host is plain http, else ``None`` (as for ``callback_url``).

    Over http the API key (in the ``Authorization`` header) and the file travel in clear; use https for
    any upload host that is not on this machine.
    """
    parts = urlsplit(upload_base_url)
    if parts.scheme.lower() != "http":
        return None
    return (
        f"upload_base_url uses plain http (host {parts.hostname or '?'}): the API key and the uploaded file "
        "travel unencrypted; use an https URL"
    )


def _parse_answer(data: Any, prepared: PreparedUpload, where: str) -> UploadedFile:
    if not isinstance(data, Mapping):
        raise RunwayProtocolError(f"{where}: the answer has no data object")
    url = data.get("downloadUrl")
    if not isinstance(url, str) or not is_http_url(url):
        shown = truncate(repr(url), 120) if not isinstance(url, str) else repr(redact_url(url))
        raise RunwayProtocolError(f"{where}: downloadUrl {shown} is not an absolute http(s) URL")
    size = data.get("fileSize")
    mime = data.get("mimeType")
    path = data.get("filePath")
    return UploadedFile(
        download_url=url,
        file_name=str(data.get("fileName") or prepared.file_name),
        file_path=path if isinstance(path, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else prepared.size,
        mime_type=mime if isinstance(mime, str) and mime else prepared.mime_type,
        sha256=prepared.sha256,
    )


def _send_once(
    session: requests.Session,
    url: str,
    prepared: PreparedUpload,
    upload_path: str,
    *,
    timeout: tuple[float, float],
    chunk_size: int,
    secret: str,
    request_options: Mapping[str, Any],
) -> UploadedFile:
    where = f"POST {FILE_STREAM_UPLOAD_PATH}"
    body = MultipartBody(prepared, {"uploadPath": upload_path, "fileName": prepared.file_name}, chunk_size=chunk_size)
    failure: RunwayError | None = None
    try:
        with session.post(
            url,
            data=body,
            headers={"Content-Type": body.content_type},
            timeout=timeout,
            stream=True,
            allow_redirects=False,
            **request_options,
        ) as response:
            content = read_capped(response, MAX_RESPONSE_BYTES)
            status, retry_after = response.status_code, response.headers.get("Retry-After")
    except Exception as error:  # requests', urllib3's and http.client's alike
        failure = RunwayTransportError(
            f"{where} failed: {type(error).__name__}: {truncate(redact_key(str(error), secret)) or 'no detail'}",
            request_sent=True,
        )
    if failure is not None:
        raise failure  # outside the handler, so the original error (which may quote the key) is not chained
    try:  # the body is parsed as it came; only what an error shows is redacted
        data = parse_envelope(status, content, retry_after=retry_after, method="POST", path=FILE_STREAM_UPLOAD_PATH)
        return _parse_answer(data, prepared, where)
    except RunwayError as error:
        redact_error(error, secret)
        raise


def upload_file(
    session: requests.Session,
    upload_base_url: str | None,
    source: InputSource | ObjectStoragePath | str | os.PathLike[str],
    *,
    upload_path: str = DEFAULT_UPLOAD_PATH,
    file_name: str | None = None,
    field: str | None = None,
    limits: UploadLimits | None = None,
    max_bytes: int | None = None,
    timeout: tuple[float, float] = DEFAULT_UPLOAD_TIMEOUT,
    retries: int = 3,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    secret: str | None = None,
    logger: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    request_options: Mapping[str, Any] | None = None,
) -> UploadedFile:
    """Upload ``source`` with KIE's file-stream upload and return what KIE answered (``download_url`` first).

    :param session: a ``requests`` session that authenticates (the hook's: ``Authorization: Bearer <key>``).
    :param upload_base_url: the upload host; empty means ``https://kieai.redpandaai.co``.
    :param source: a local path, an ``ObjectStoragePath``, a URL such as ``s3://bucket/in.png``, or an
        :class:`InputSource` from :func:`resolve_input`.
    :param upload_path: the folder on the file host.
    :param file_name: the name to store the file under; by default the SHA-256 of its bytes plus its
        extension, so uploading the same bytes again overwrites instead of adding a file.
    :param field: the input field the file is for; its size limit (from ``limits``) and kind then apply.
    :param max_bytes: the largest file sent, overriding the field's limit (100 MB without a field).
    :param retries: further attempts after a transient failure (a dropped connection, 429, 5xx), with the
        back-off of :mod:`airflow_provider_runway.core.retry`. A retry sends the same name, so it overwrites
        rather than piles up.
    :param secret: the API key, removed from any remote text quoted in an exception or a log line.
    :param logger: where progress and failures are logged (the hook passes its own ``log``).
    :param request_options: further ``requests`` arguments of the POST: ``proxies``, ``verify``, ``cert``.
    :raises RunwayParameterError: for a bad source, path or name, a file too large, empty or of the wrong
        kind; nothing is sent. The path is read once: what was checked is what every attempt sends.
    :raises RunwayAuthError: 401, the key was refused.
    :raises RunwayRequestRejectedError: 400 and other refusals.
    :raises RunwayUnavailableError: a 5xx still failing after the retries.
    :raises RunwayProtocolError: an answer that is not the documented JSON or lacks a usable ``downloadUrl``.
    """
    logger = logger or log
    secret = secret or ""
    base = check_upload_base_url(upload_base_url)
    upload_path = check_upload_path(upload_path)
    if warning := plain_http_upload_warning(base):
        logger.warning(warning)
    if file_name is not None:
        check_file_name(file_name)
    label = field or "source"
    source_obj = as_input_source(source, label)
    if max_bytes is None and field is not None:
        max_bytes = (limits or UploadLimits()).for_field(field)
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_UPLOAD_BYTES
    if source_obj.size is not None and source_obj.size > limit:
        if field in INPUT_FIELDS:
            raise RunwayInputTooLargeError(label, source_obj.location, source_obj.size, limit)
        raise RunwayParameterError(
            label, source_obj.location, f"the file is {_megabytes(source_obj.size)}, over the {_megabytes(limit)} limit"
        )
    # The path is read once, here; the kind check, the hash and every attempt use the same private copy.
    with prepare_upload(
        source_obj, file_name=file_name, max_bytes=limit, field=field, chunk_size=chunk_size
    ) as prepared:
        url = f"{base}{FILE_STREAM_UPLOAD_PATH}"
        logger.info(
            "Uploading %s (%d bytes, %s) to %s as %s/%s",
            source_obj.location,
            prepared.size,
            prepared.mime_type,
            base,
            upload_path,
            prepared.file_name,
        )
        started = time.monotonic()
        # The name is the content's hash, so a retry overwrites what an earlier attempt may have stored:
        # an upload is retried on every transient error, like a read.
        try:
            uploaded = call_with_retries(
                lambda: _send_once(
                    session,
                    url,
                    prepared,
                    upload_path,
                    timeout=timeout,
                    chunk_size=chunk_size,
                    secret=secret,
                    request_options=request_options or {},
                ),
                policy=read_may_retry,
                retries=retries,
                delay=retry_delay,
                log=logger,
                what=f"upload of {source_obj.location}",
                sleep=sleep,
            )
        except RunwayError as error:
            logger.warning("Upload of %s failed: %s", source_obj.location, error)
            raise
        elapsed = time.monotonic() - started
        logger.info("Uploaded %s in %.1f s: %s", source_obj.location, elapsed, redact_url(uploaded.download_url))
        return uploaded


def take_file_inputs(
    values: dict[str, Any], limits: Callable[[], UploadLimits], placeholders: Mapping[str, Any]
) -> dict[str, InputSource]:
    """The file inputs among an operator's rendered ``values``, each checked, with stand-ins put in their place.

    Every file is found and checked against its size limit and kind before any is uploaded, so a bad
    second input spends nothing on the first. ``values`` keeps a placeholder URL for each file until
    the upload's ``downloadUrl`` replaces it. ``limits`` is called only when there is a file (it may
    read the connection).
    """
    files: dict[str, InputSource] = {}
    for name in [name for name in INPUT_FIELDS if name in values]:
        if is_upload_input(values[name], name):
            source = resolve_input(values[name], name, limits=limits())
            if isinstance(source, InputSource):
                check_input_kind(source, name)
                files[name], values[name] = source, placeholders[name]
    return files
