"""The simulator's store of uploaded files: field checks, staging, overwrite, expiry, cleanup."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import requests
from aiohttp.abc import AbstractResolver

from airflow_provider_runway.simulator import SimulatorThread
from airflow_provider_runway.simulator import server as server_module
from airflow_provider_runway.simulator import uploads as sim_uploads
from airflow_provider_runway.simulator.cli import ALLOW_INTERNAL_FETCH_ENV, build_parser, config_from_args
from airflow_provider_runway.simulator.media import png_bytes
from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY
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


# ---------------------------------------------------------------------------------------------- URL upload
# The simulator serves what its URL upload fetches to anyone, so it must not fetch internal addresses
# (issue 23). Names resolve through a stub resolver; nothing here connects anywhere but 127.0.0.1.


class StubResolver(AbstractResolver):
    """Answers from a fixed table and records every lookup; an unknown name does not resolve."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        address = self.table[host]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": kind, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


class _Origin(http.server.BaseHTTPRequestHandler):
    """A file host on 127.0.0.1: /file.png, and redirects to wherever the path after /to/ says."""

    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", unquote(self.path.removeprefix("/to/")))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = png_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[str]:
    _Origin.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> StubResolver:
    stub = StubResolver(
        {
            "files.example": "127.0.0.1",  # the origin, treated as public by `loopback_is_public`
            "metadata.test": "169.254.169.254",
            "intranet.test": "10.0.0.7",
            "v6-internal.test": "fd12::7",
            "localhost": "127.0.0.1",
        }
    )
    real = server_module.new_fetcher
    monkeypatch.setattr(
        server_module, "new_fetcher", lambda *, allow_internal: real(allow_internal=allow_internal, resolver=stub)
    )
    return stub


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The origin stands in for a public host: only 127.0.0.1 counts as public, every other address as before."""
    real = sim_uploads.is_internal_address
    monkeypatch.setattr(sim_uploads, "is_internal_address", lambda address: address != "127.0.0.1" and real(address))


def _url_upload(sim: SimulatorThread, file_url: str) -> dict[str, Any]:
    response = requests.post(
        f"{sim.url}/api/file-url-upload",
        json={"fileUrl": file_url, "uploadPath": "in"},
        headers={"Authorization": f"Bearer {TEST_API_KEY}"},
        timeout=30,
    )
    return dict(response.json())


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "not an address",
    ],
)
def test_internal_addresses(address: str) -> None:
    assert sim_uploads.is_internal_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not sim_uploads.is_internal_address(address)


@pytest.mark.parametrize(
    ("file_url", "looked_up"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", []),  # an address literal: refused before any lookup
        ("http://[fd00::1]/x.png", []),
        ("http://127.0.0.1:9/x.png", []),
        ("http://metadata.test/latest/meta-data/", ["metadata.test"]),  # a name: refused on what it resolves to
        ("http://intranet.test/x.png", ["intranet.test"]),
        ("http://v6-internal.test/x.png", ["v6-internal.test"]),
        ("http://localhost:9/x.png", ["localhost"]),
    ],
)
def test_the_url_upload_refuses_internal_addresses(
    runway_sim_factory: Any, resolver: StubResolver, file_url: str, looked_up: list[str]
) -> None:
    sim = runway_sim_factory()
    answer = _url_upload(sim, file_url)
    assert answer["code"] == 400 and answer["data"] is None
    assert "is an internal address" in answer["msg"] and "--allow-internal-fetch" in answer["msg"]
    assert resolver.lookups == looked_up
    assert sim.counters()["uploads_total"] == 0


def test_the_simulators_own_files_are_refused_by_default(runway_sim_factory: Any) -> None:
    sim = runway_sim_factory()
    answer = _url_upload(sim, f"{sim.url}/files/anything.mp4")
    assert answer["code"] == 400 and "internal address" in answer["msg"]


@pytest.mark.parametrize(
    "hop",
    ["http://169.254.169.254/latest/meta-data/", "http://metadata.test/latest/", "http://[::ffff:10.0.0.1]/x"],
)
def test_every_redirect_hop_is_checked(
    runway_sim_factory: Any, resolver: StubResolver, loopback_is_public: None, origin: str, hop: str
) -> None:
    port = origin.split(":")[1]
    sim = runway_sim_factory()
    answer = _url_upload(sim, f"http://files.example:{port}/to/{quote(hop, safe='')}")
    assert answer["code"] == 400 and "is an internal address" in answer["msg"]
    assert len(_Origin.hits) == 1 and unquote(_Origin.hits[0]) == f"/to/{hop}"  # the first hop only
    assert sim.counters()["uploads_total"] == 0


def test_a_redirect_to_a_public_file_is_followed(
    runway_sim_factory: Any, resolver: StubResolver, loopback_is_public: None, origin: str
) -> None:
    port = origin.split(":")[1]
    sim = runway_sim_factory()
    answer = _url_upload(sim, f"http://files.example:{port}/to/%2Ffile.png")
    assert answer["code"] == 200, answer
    assert answer["data"]["fileSize"] == len(png_bytes())
    assert _Origin.hits == ["/to/%2Ffile.png", "/file.png"]


def test_too_many_redirects_are_refused(
    runway_sim_factory: Any, resolver: StubResolver, loopback_is_public: None, origin: str
) -> None:
    port = origin.split(":")[1]
    url = f"http://files.example:{port}/file.png"
    for _ in range(sim_uploads.MAX_FETCH_REDIRECTS + 1):
        url = f"http://files.example:{port}/to/{quote(url, safe='')}"
    answer = _url_upload(runway_sim_factory(), url)
    assert answer["code"] == 400 and "more than 5 redirects" in answer["msg"]


def test_the_flag_allows_internal_addresses(runway_sim_factory: Any, origin: str) -> None:
    sim = runway_sim_factory(allow_internal_fetch=True)
    answer = _url_upload(sim, f"http://{origin}/file.png")
    assert answer["code"] == 200, answer
    assert _Origin.hits == ["/file.png"]


def test_the_flag_is_set_at_startup_only(runway_sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args([]).allow_internal_fetch is False
    assert config_from_args(build_parser().parse_args(["--allow-internal-fetch"])).allow_internal_fetch is True
    monkeypatch.setenv(ALLOW_INTERNAL_FETCH_ENV, "1")
    assert config_from_args(build_parser().parse_args([])).allow_internal_fetch is True
    sim = runway_sim_factory()
    response = requests.post(f"{sim.url}/_sim/config", json={"allow_internal_fetch": True}, timeout=10)
    assert response.status_code == 400
    assert sim.config()["allow_internal_fetch"] is False


@pytest.mark.parametrize("location", ["http://[bad/x", "ftp://files.example/x.png", "file:///etc/passwd"])
def test_a_redirect_to_anything_but_http_is_refused(
    runway_sim_factory: Any, resolver: StubResolver, loopback_is_public: None, origin: str, location: str
) -> None:
    port = origin.split(":")[1]
    answer = _url_upload(runway_sim_factory(), f"http://files.example:{port}/to/{quote(location, safe='')}")
    assert answer["code"] == 400 and "a redirect to" in answer["msg"]
    assert len(_Origin.hits) == 1
