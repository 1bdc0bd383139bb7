"""Input uploads: resolving inputs, size limits before sending, the streamed multipart body, KIE's answers."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import os
import tracemalloc
from pathlib import Path
from typing import Any

import fsspec
import pytest
import requests
import responses
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayParameterError,
    RunwayProtocolError,
    RunwayRequestRejectedError,
    RunwayUnavailableError,
)
from airflow_provider_runway.transfer.uploads import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_UPLOAD_BASE_URL,
    FILE_STREAM_UPLOAD_PATH,
    MIB,
    InputSource,
    RunwayInputTooLargeError,
    UploadLimits,
    input_url,
    prepare_upload,
    resolve_input,
    upload_file,
)

from .conftest import API_KEY, UploadHost

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
UPLOAD_URL = f"{DEFAULT_UPLOAD_BASE_URL}{FILE_STREAM_UPLOAD_PATH}"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sparse(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes starting with ``head``, written without holding ``size`` bytes."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def big_file(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes of real (non-sparse) data, written 1 MiB at a time."""
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    with path.open("wb") as out:
        out.write(head)
        written = len(head)
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            written += len(piece)
    return path


def multipart_parts(received_body: bytes, content_type: str) -> dict[str, tuple[dict[str, str], Any]]:
    """The parts of a multipart/form-data body by name, parsed with the standard library's email parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + received_body
    )
    assert message.is_multipart(), "the body is not multipart"
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = (dict(part.items()), part.get_payload(decode=True))
    return parts


# ---------------------------------------------------------------------------------------------- resolving


def test_an_http_url_is_returned_unchanged() -> None:
    url = "https://example.com/in.png?sig=abc"
    assert resolve_input(url, "image_url") == url
    assert input_url(url, "image_url", upload=lambda source: pytest.fail("nothing to upload")) == url


@pytest.mark.parametrize("value", [None, "", "  "])
def test_an_unset_input_stays_unset(value: Any) -> None:
    assert resolve_input(value, "reference_image") is None


def test_local_paths_in_every_form_become_sources(tmp_path: Path) -> None:
    image = write(tmp_path / "in.png", PNG)
    for value in (str(image), image, f"file://{image}", ObjectStoragePath(f"file://{image}")):
        source = resolve_input(value, "image_url")
        assert isinstance(source, InputSource), value
        assert source.size == len(PNG)
        assert source.name == "in.png"
        with source.open() as stream:
            assert stream.read() == PNG


def test_a_file_url_is_percent_decoded(tmp_path: Path) -> None:
    image = write(tmp_path / "my input.png", PNG)
    source = resolve_input(f"file://{str(image).replace(' ', '%20')}", "image_url")
    assert isinstance(source, InputSource)
    assert source.location == str(image)
    with pytest.raises(RunwayParameterError, match="a file:// URL must name a local file"):
        resolve_input("file://fileserver/share/in.png", "image_url")


def test_an_object_storage_url_becomes_a_source() -> None:
    fsspec.filesystem("memory").pipe("/inputs/clip.mp4", MP4_HEAD + bytes(100))
    source = resolve_input("memory://inputs/clip.mp4", "video_url")
    assert isinstance(source, InputSource)
    assert source.size == len(MP4_HEAD) + 100
    assert source.location == "memory://inputs/clip.mp4"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (42, "must be an absolute http(s) URL, a local file path, an ObjectStoragePath"),
        ("nosuchscheme://bucket/in.png", "unknown storage scheme 'nosuchscheme'"),
        ("http://", "must be an absolute http(s) URL"),
        ("https://exa mple.com/x.png", "must be an absolute http(s) URL"),
        ("/no/such/file.png", "no such file"),
        ("memory://inputs/missing.png", "no such file"),
    ],
)
def test_bad_inputs_name_the_field_and_what_it_accepts(value: Any, reason: str) -> None:
    with pytest.raises(RunwayParameterError) as raised:
        resolve_input(value, "reference_image")
    assert raised.value.field == "reference_image"
    assert "reference_image" in str(raised.value)
    assert reason in str(raised.value)


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(RunwayParameterError, match=r"video_url.*no such file"):
        resolve_input(str(tmp_path), "video_url")


def test_an_unknown_field_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an input field"):
        resolve_input("https://example.com/x.png", "imageUrl")


def test_object_storage_credentials_stay_out_of_messages() -> None:
    with pytest.raises(RunwayParameterError) as raised:
        resolve_input("memory://user:hunter2@inputs/missing.png", "image_url")
    assert "hunter2" not in str(raised.value)


# ---------------------------------------------------------------------------------------------- limits


def test_an_oversized_image_is_refused_naming_field_size_and_limit(tmp_path: Path) -> None:
    image = sparse(tmp_path / "big.png", PNG, 11 * MIB)
    with pytest.raises(RunwayInputTooLargeError) as raised:
        resolve_input(str(image), "image_url")
    message = str(raised.value)
    assert isinstance(raised.value, RunwayParameterError)
    assert "image_url" in message
    assert "11 MB" in message and str(11 * MIB) in message
    assert "10 MB" in message and str(10 * MIB) in message
    assert (raised.value.size, raised.value.limit) == (11 * MIB, 10 * MIB)


def test_an_image_at_the_limit_is_accepted(tmp_path: Path) -> None:
    image = sparse(tmp_path / "edge.png", PNG, 10 * MIB)
    assert isinstance(resolve_input(str(image), "reference_image"), InputSource)


def test_limits_come_from_the_connection_extra(tmp_path: Path) -> None:
    video = sparse(tmp_path / "clip.mp4", MP4_HEAD, 30 * MIB)
    with pytest.raises(RunwayInputTooLargeError, match="video_url"):
        resolve_input(str(video), "video_url")
    limits = UploadLimits.from_extra({"upload_max_video_mb": 50, "upload_max_image_mb": "2.5"})
    assert limits == UploadLimits(max_image_bytes=int(2.5 * MIB), max_video_bytes=50 * MIB)
    assert isinstance(resolve_input(str(video), "video_url", limits=limits), InputSource)
    assert UploadLimits.from_extra({}) == UploadLimits(10 * MIB, 10 * MIB)
    for bad in ("ten", 0, -1):
        with pytest.raises(ValueError, match="upload_max_image_mb"):
            UploadLimits.from_extra({"upload_max_image_mb": bad})


@responses.activate
def test_an_oversized_image_is_refused_before_any_request(tmp_path: Path, session: requests.Session) -> None:
    responses.add(responses.POST, UPLOAD_URL, json={"code": 200, "data": {}})
    image = sparse(tmp_path / "big.png", PNG, 10 * MIB + 1)
    with pytest.raises(RunwayInputTooLargeError, match="image_url"):
        upload_file(session, None, str(image), field="image_url")
    assert len(responses.calls) == 0


@responses.activate
def test_a_file_larger_than_its_store_reported_is_stopped_by_the_hashing_pass(
    tmp_path: Path, session: requests.Session
) -> None:
    responses.add(responses.POST, UPLOAD_URL, json={"code": 200, "data": {}})
    image = sparse(tmp_path / "grown.png", PNG, 12 * MIB)
    source = InputSource(location=str(image), target=image, size=None)  # a store that reports no size
    with pytest.raises(RunwayInputTooLargeError, match="image_url"):
        upload_file(session, None, source, field="image_url")
    assert len(responses.calls) == 0


@responses.activate
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"upload_path": "/leading"}, "upload_path"),
        ({"upload_path": "a/../b"}, "upload_path"),
        ({"upload_path": "trailing/"}, "upload_path"),
        ({"file_name": "../escape.png"}, "file_name"),
        ({"file_name": "no-extension"}, "file_name"),
        ({"file_name": 'quote".png'}, "file_name"),
    ],
)
def test_bad_paths_and_names_are_refused_before_any_request(
    tmp_path: Path, session: requests.Session, kwargs: dict[str, str], field: str
) -> None:
    responses.add(responses.POST, UPLOAD_URL, json={"code": 200, "data": {}})
    image = write(tmp_path / "in.png", PNG)
    with pytest.raises(RunwayParameterError) as raised:
        upload_file(session, None, image, **kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert len(responses.calls) == 0


def test_a_video_is_not_sent_as_an_image(tmp_path: Path) -> None:
    clip = write(tmp_path / "clip.png", MP4_HEAD + bytes(64))  # the bytes win over the name
    source = resolve_input(str(clip), "image_url")
    assert isinstance(source, InputSource)
    with pytest.raises(RunwayParameterError, match=r"image_url.*must be an image; the file is video/mp4"):
        prepare_upload(source, field="image_url")


# ---------------------------------------------------------------------------------------------- naming


def test_the_file_name_is_the_content_hash_and_stable(tmp_path: Path) -> None:
    first = prepare_upload(resolve_input(str(write(tmp_path / "a.PNG", PNG)), "image_url"))  # type: ignore[arg-type]
    again = prepare_upload(resolve_input(str(write(tmp_path / "b.png", PNG)), "image_url"))  # type: ignore[arg-type]
    other = prepare_upload(resolve_input(str(write(tmp_path / "c.png", PNG + b"!")), "image_url"))  # type: ignore[arg-type]
    assert first.file_name == again.file_name == f"{hashlib.sha256(PNG).hexdigest()}.png"
    assert first.sha256 == hashlib.sha256(PNG).hexdigest()
    assert other.file_name != first.file_name
    assert first.mime_type == "image/png"


def test_a_file_without_extension_gets_one_from_its_bytes(tmp_path: Path) -> None:
    prepared = prepare_upload(InputSource(str(tmp_path / "clip"), write(tmp_path / "clip", MP4_HEAD + bytes(8))))
    assert prepared.file_name.endswith(".mp4")
    assert prepared.mime_type == "video/mp4"


def test_the_same_file_uploaded_twice_gets_the_same_name(
    tmp_path: Path, session: requests.Session, upload_host: UploadHost
) -> None:
    image = write(tmp_path / "in.png", PNG)
    first = upload_file(session, upload_host.url, image, field="image_url")
    second = upload_file(session, upload_host.url, str(image), field="image_url")
    names = [received.file_name for received in upload_host.requests]
    assert names == [f"{hashlib.sha256(PNG).hexdigest()}.png"] * 2
    assert first.download_url == second.download_url
    assert first.download_url == f"{upload_host.url}/files/airflow-runway/{names[0]}"


# ---------------------------------------------------------------------------------------------- the body


def test_the_multipart_body_is_well_formed(tmp_path: Path, session: requests.Session, upload_host: UploadHost) -> None:
    upload_host.keep_bodies = True
    image = write(tmp_path / "in.png", PNG)
    uploaded = upload_file(session, upload_host.url, image, upload_path="images/user-uploads", field="image_url")
    (received,) = upload_host.requests
    assert received.path == FILE_STREAM_UPLOAD_PATH
    assert received.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "Transfer-Encoding" not in received.headers
    assert received.body is not None
    assert int(received.headers["Content-Length"]) == len(received.body)
    parts = multipart_parts(received.body, received.headers["Content-Type"])
    assert set(parts) == {"file", "uploadPath", "fileName"}
    assert parts["uploadPath"][1] == b"images/user-uploads"
    assert parts["fileName"][1] == uploaded.file_name.encode()
    file_headers, file_bytes = parts["file"]
    assert file_bytes == PNG
    assert file_headers["Content-Type"] == "image/png"
    assert f'filename="{uploaded.file_name}"' in file_headers["Content-Disposition"]
    assert uploaded.size == len(received.body)  # the host reported the body length as the file size
    assert uploaded.sha256 == hashlib.sha256(PNG).hexdigest()


# ---------------------------------------------------------------------------------------------- answers


def _error(code: int, msg: str) -> dict[str, Any]:
    return {"success": False, "code": code, "msg": msg, "data": None}


@responses.activate
@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, 401, RunwayAuthError),
        (200, 401, RunwayAuthError),
        (400, 400, RunwayRequestRejectedError),
        (200, 400, RunwayRequestRejectedError),
    ],
)
def test_refusals_map_to_errors_and_are_not_retried(
    tmp_path: Path, session: requests.Session, status: int, code: int, error_class: type[Exception]
) -> None:
    # A proxy that echoes the request's Authorization header back must not leak the key.
    responses.add(responses.POST, UPLOAD_URL, status=status, json=_error(code, f"refused: Bearer {API_KEY}"))
    with pytest.raises(error_class) as raised:
        upload_file(session, "", write(tmp_path / "in.png", PNG), secret=API_KEY, sleep=lambda s: None)
    assert API_KEY not in str(raised.value)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert len(responses.calls) == 1


@responses.activate
def test_a_server_error_is_retried_with_the_same_name(tmp_path: Path, session: requests.Session) -> None:
    responses.add(responses.POST, UPLOAD_URL, status=500, json=_error(500, "busy"))
    responses.add(responses.POST, UPLOAD_URL, status=503, body="<html>down</html>")
    data = {"fileName": "x.png", "downloadUrl": "https://tempfile.redpandaai.co/x/airflow-runway/x.png"}
    responses.add(responses.POST, UPLOAD_URL, json={"success": True, "code": 200, "msg": "ok", "data": data})
    waits: list[float] = []
    uploaded = upload_file(session, None, write(tmp_path / "in.png", PNG), retries=2, sleep=waits.append)
    assert uploaded.download_url == data["downloadUrl"]
    assert len(responses.calls) == 3 and len(waits) == 2


@responses.activate
def test_a_server_error_after_the_retries_is_raised(tmp_path: Path, session: requests.Session) -> None:
    responses.add(responses.POST, UPLOAD_URL, status=500, json=_error(500, "busy"))
    with pytest.raises(RunwayUnavailableError):
        upload_file(session, None, write(tmp_path / "in.png", PNG), retries=1, sleep=lambda s: None)
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize(
    "data",
    [
        None,
        {"fileName": "x.png"},
        {"downloadUrl": "/relative/x.png"},
        {"downloadUrl": "javascript:alert(1)"},
        {"downloadUrl": 42},
    ],
)
def test_an_answer_without_a_usable_download_url_is_a_protocol_error(
    tmp_path: Path, session: requests.Session, data: Any
) -> None:
    responses.add(responses.POST, UPLOAD_URL, json={"success": True, "code": 200, "msg": "ok", "data": data})
    with pytest.raises(RunwayProtocolError, match="file-stream-upload"):
        upload_file(session, None, write(tmp_path / "in.png", PNG), retries=0)


@responses.activate
def test_the_upload_host_comes_from_the_argument(tmp_path: Path, session: requests.Session) -> None:
    data = {"downloadUrl": "https://files.example/x.png"}
    responses.add(responses.POST, "https://uploads.example/api/file-stream-upload", json={"code": 200, "data": data})
    uploaded = upload_file(session, "https://uploads.example/", write(tmp_path / "in.png", PNG))
    assert uploaded.download_url == "https://files.example/x.png"
    assert uploaded.mime_type == "image/png" and uploaded.size == len(PNG)
    with pytest.raises(RunwayParameterError, match="upload_base_url"):
        upload_file(session, "ftp://uploads.example", write(tmp_path / "in.png", PNG))


@responses.activate
def test_an_answer_is_parsed_as_it_came_even_when_it_contains_the_key(
    tmp_path: Path, session: requests.Session
) -> None:
    """Only shown text is redacted: a short key that occurs in the answer's keys must not corrupt it."""
    data = {"downloadUrl": "https://files.example/x.png", "fileName": "x.png"}
    responses.add(responses.POST, UPLOAD_URL, json={"code": 200, "data": data})
    uploaded = upload_file(session, "", write(tmp_path / "in.png", PNG), secret="load")
    assert uploaded.download_url == "https://files.example/x.png"


# ---------------------------------------------------------------------------------------------- memory


def _peak_growth(run: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before


def test_a_50_mb_upload_streams_with_flat_memory(
    tmp_path: Path, session: requests.Session, upload_host: UploadHost
) -> None:
    size = 50 * MIB
    clip = big_file(tmp_path / "clip.mp4", MP4_HEAD, size)
    limits = UploadLimits(max_video_bytes=60 * MIB)
    uploaded, growth = _peak_growth(
        lambda: upload_file(session, upload_host.url, str(clip), field="video_url", limits=limits)
    )
    (received,) = upload_host.requests
    print(f"50 MB upload: traced peak growth {growth / MIB:.2f} MiB")
    assert received.length == int(received.headers["Content-Length"]) > size
    assert uploaded.file_name.endswith(".mp4") and uploaded.mime_type == "video/mp4"
    assert growth < 5 * MIB, f"+{growth / MIB:.1f} MiB while uploading 50 MB"


def test_an_object_storage_source_streams(
    session: requests.Session, upload_host: UploadHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsspec.implementations.memory import MemoryFile

    reads: list[int] = []
    real_read = MemoryFile.read

    def read(self: MemoryFile, size: int | None = -1) -> bytes:
        data = real_read(self, size)
        reads.append(len(data))
        return data

    # A BytesIO hands out its whole buffer without a copy, so memory alone cannot show a whole-file read here.
    monkeypatch.setattr(MemoryFile, "read", read)
    size = 20 * MIB
    payload = MP4_HEAD + os.urandom(size - len(MP4_HEAD))
    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/videos/clip.mp4", payload)
    expected = hashlib.sha256(payload).hexdigest()
    # The store's BytesIO shares these bytes; while the test holds them too, CPython copies them all on the
    # store's first getbuffer() (its size lookup), which is the memory filesystem's cost, not the upload's.
    del payload
    try:
        upload_host.keep_bodies = False
        uploaded, growth = _peak_growth(
            lambda: upload_file(
                session,
                upload_host.url,
                "memory://bucket/videos/clip.mp4",
                field="video_url",
                limits=UploadLimits(max_video_bytes=50 * MIB),
            )
        )
    finally:
        memory.rm("/bucket/videos/clip.mp4")
    (received,) = upload_host.requests
    print(f"20 MB memory:// upload: traced peak growth {growth / MIB:.2f} MiB")
    assert received.file_name == f"{expected}.mp4"
    assert uploaded.sha256 == expected
    assert growth < 5 * MIB, f"+{growth / MIB:.1f} MiB while uploading 20 MB from memory://"
    assert sum(reads) == size  # read once, into the private copy every attempt sends
    assert max(reads) <= DEFAULT_CHUNK_SIZE, f"a read of {max(reads)} bytes"


def test_a_401_from_a_real_host_is_an_auth_error_without_the_key(
    session: requests.Session, upload_host: UploadHost, tmp_path: Path
) -> None:
    upload_host.answers.append((401, _error(401, f"You do not have access permissions (Bearer {API_KEY})")))
    with pytest.raises(RunwayAuthError, match="access permissions") as raised:
        upload_file(session, upload_host.url, write(tmp_path / "in.png", PNG), secret=API_KEY)
    assert API_KEY not in str(raised.value)
    assert len(upload_host.requests) == 1
