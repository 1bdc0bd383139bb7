"""A file swapped on disk during an upload is never sent: the input is read once into a private copy.

The attack: a same-size decoy image at the path while it is checked and hashed, then a symlink to a
secret (any file the worker can read) before the send or during a retry's back-off. A real loopback
file host records every body it receives; no byte of the secret may be among them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_runway.transfer import uploads
from airflow_provider_runway.transfer.uploads import IN_MEMORY_COPY_BYTES, InputSource, prepare_upload, upload_file

from .conftest import UploadHost, _Bearer

DECOY = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
MARKER = b"WORKER-SECRET-"


def _secret_like(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


def _swap_to_symlink(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


class _SwappingSession(requests.Session):
    """A session that runs ``before_post`` just before each POST leaves: the attacker's moment."""

    def __init__(self, before_post: Callable[[], None]) -> None:
        super().__init__()
        self.trust_env = False
        self.auth = _Bearer()
        self.before_post = before_post

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.before_post()
        return super().post(*args, **kwargs)


def _bodies(upload_host: UploadHost) -> list[bytes]:
    return [received.body or b"" for received in upload_host.requests]


@pytest.fixture
def decoy_and_secret(tmp_path: Path) -> tuple[Path, Path]:
    image = tmp_path / "in.png"
    image.write_bytes(DECOY)
    secret = tmp_path / "secret.env"
    secret.write_bytes(_secret_like(len(DECOY)))  # same size: the old size check could not tell
    return image, secret


def test_a_symlink_swapped_in_before_the_send_is_not_sent(
    decoy_and_secret: tuple[Path, Path], upload_host: UploadHost
) -> None:
    image, secret = decoy_and_secret
    upload_host.keep_bodies = True
    with _SwappingSession(lambda: image.is_symlink() or _swap_to_symlink(image, secret)) as session:
        uploaded = upload_file(session, upload_host.url, image, field="image_url", retries=0)
    bodies = _bodies(upload_host)
    assert len(bodies) == 1
    assert not any(MARKER in body for body in bodies), "the secret left the worker"
    assert DECOY in bodies[0]
    assert uploaded.sha256 == hashlib.sha256(DECOY).hexdigest()


def test_a_symlink_swapped_in_during_a_retrys_back_off_is_not_sent(
    decoy_and_secret: tuple[Path, Path], upload_host: UploadHost, session: requests.Session
) -> None:
    image, secret = decoy_and_secret
    upload_host.keep_bodies = True
    upload_host.answers = [(500, {"code": 500, "msg": "Server error"}), None]
    upload_file(
        session,
        upload_host.url,
        image,
        field="image_url",
        retries=1,
        sleep=lambda seconds: _swap_to_symlink(image, secret),
    )
    bodies = _bodies(upload_host)
    assert len(bodies) == 2, "the second attempt did not happen"
    assert not any(MARKER in body for body in bodies), "the secret left the worker"
    assert all(DECOY in body for body in bodies)


def test_the_path_is_opened_once(
    decoy_and_secret: tuple[Path, Path],
    upload_host: UploadHost,
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image, _ = decoy_and_secret
    opened: list[str] = []
    real_open = InputSource.open

    def counting_open(self: InputSource) -> Any:
        opened.append(self.location)
        return real_open(self)

    monkeypatch.setattr(InputSource, "open", counting_open)
    upload_host.answers = [(503, {"code": 503, "msg": "busy"}), (502, {"code": 502, "msg": "busy"}), None]
    upload_file(session, upload_host.url, image, field="image_url", retries=2, sleep=lambda seconds: None)
    assert len(upload_host.requests) == 3
    assert opened == [str(image)]


def test_a_large_copy_is_an_unnamed_file_only_its_owner_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(uploads.tempfile, "tempdir", str(private_tmp))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(IN_MEMORY_COPY_BYTES + 1))
    with prepare_upload(InputSource(str(clip), clip), field="video_url") as prepared:
        prepared.copy.seek(0)
        assert prepared.copy.read() == clip.read_bytes()
        descriptor = prepared.copy.fileno()  # rolled over from memory to a real file
        assert stat.S_IMODE(os.fstat(descriptor).st_mode) == 0o600
        assert list(private_tmp.iterdir()) == []  # no name another process could open
    assert prepared.copy.closed


def test_a_small_copy_stays_in_memory(
    decoy_and_secret: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(uploads.tempfile, "tempdir", str(private_tmp))
    image, _ = decoy_and_secret
    with prepare_upload(InputSource(str(image), image), field="image_url") as prepared:
        assert not prepared.copy._rolled  # type: ignore[attr-defined]
        assert list(private_tmp.iterdir()) == []
