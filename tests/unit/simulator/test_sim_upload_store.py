"""The simulator's store of uploaded files: field checks, staging, overwrite, expiry, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_runway.simulator.uploads import (
    UploadRejected,
    UploadStore,
    check_file_name,
    check_upload_path,
    mime_type_of,
    suffix_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("value", [None, "", "/images", "images/", "a//b", "a/../b", "./a", "a/.hidden/\x00"])
def test_bad_upload_paths_are_refused_naming_the_field(value):
    with pytest.raises(UploadRejected, match="uploadPath"):
        check_upload_path(value)


def test_good_names():
    assert check_upload_path("images/user-uploads") == "images/user-uploads"
    assert check_file_name("cat 1.png", ".png") == "cat 1.png"
    random_name = check_file_name(None, ".mp4")
    assert random_name.endswith(".mp4") and random_name != check_file_name(None, ".mp4")
    with pytest.raises(UploadRejected, match="fileName"):
        check_file_name("a/b.png", "")
    assert suffix_of("https://h/x/clip.MP4?sig=1") == ".mp4"
    assert suffix_of(None, "image/png") == ".png" and suffix_of(None, None) == ""
    assert mime_type_of("a.webp") == "image/webp"
    assert mime_type_of("blob", "video/mp4; codecs=avc1") == "video/mp4"
    assert mime_type_of("blob", "application/octet-stream") == "application/octet-stream"


def write(store: UploadStore, content: bytes, limit: int = 100):
    staged = store.stage(limit, "file")
    for start in range(0, len(content), 7):
        staged.write(content[start : start + 7])
    return staged


def test_commit_overwrite_expiry_and_cleanup():
    clock = Clock()
    store = UploadStore(None, clock)
    root = store.root
    first = store.commit("key-a", "in", "x.png", (s := write(store, b"one")), "image/png")
    s.discard()  # a committed staging file is not removed
    assert first.disk_path.read_bytes() == b"one" and first.size == 3
    clock.now += 5
    second = store.commit("key-a", "in", "x.png", write(store, b"two!"), "image/png")
    assert second.disk_path == first.disk_path and second.disk_path.read_bytes() == b"two!"
    assert store.find("key-b", "in/x.png", ttl=100) is None  # accounts do not share files
    assert store.find("key-a", "in/x.png", ttl=100) is second
    clock.now += 100
    assert store.find("key-a", "in/x.png", ttl=100) is None
    assert not second.disk_path.exists()
    store.close()
    assert not root.exists()


def test_staging_refuses_too_large_and_empty_files_and_leaves_nothing(tmp_path: Path):
    store = UploadStore(str(tmp_path), Clock())
    big = write(store, b"x" * 150)
    with pytest.raises(UploadRejected, match=r"file is too large: 150 bytes, the limit is 100 bytes"):
        big.check()
    big.discard()
    empty = write(store, b"")
    with pytest.raises(UploadRejected, match="file is empty"):
        empty.check()
    empty.discard()
    assert list(tmp_path.iterdir()) == []
    store.close()
    assert tmp_path.exists()  # a directory given by the user is kept
