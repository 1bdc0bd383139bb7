"""Where a download may go: addresses, redirects, .netrc, Content-Encoding and object-store writes.

File hosts are mocked with ``responses`` and names resolved by the stub in ``conftest.py``; a
connection to anything but loopback fails the test, so nothing here leaves the machine.
"""

from __future__ import annotations

import gzip
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
import responses

from airflow_provider_runway.transfer import downloads
from airflow_provider_runway.transfer.downloads import RunwayDownloadError, persist_task_result

from .conftest import StubResolver
from .test_storage import VIDEO, VIDEO_URL, FakeHook, make_task, read_stored, serve, stored_url

NAME = "task-0123abcd.mp4"


class HostsHook(FakeHook):
    """A hook whose API lives at ``base_url`` and whose connection extra allows ``allowed`` hosts."""

    def __init__(self, base_url: str = "https://api.kie.ai", allowed: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.base_url = base_url
        self.allowed = allowed

    def get_download_allowed_hosts(self) -> frozenset[str]:
        return self.allowed


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def memory_dest() -> Iterator[str]:
    root = f"guard-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}/videos/"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def memory_names(dest: str) -> list[str]:
    fs, folder = fsspec.core.url_to_fs(dest)
    return sorted(path.rsplit("/", 1)[1] for path in fs.find(folder)) if fs.exists(folder) else []


def redirect(rsps: responses.RequestsMock, url: str, location: str, status: int = 302) -> None:
    rsps.add(responses.GET, url, status=status, headers={"Location": location})


def requested(rsps: responses.RequestsMock, url: str) -> int:
    return sum(1 for call in rsps.calls if call.request.url == url)


INTERNAL = [
    "127.0.0.1",
    "127.0.0.2",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::1",
    "fe80::1",
    "fd00::1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "fe80::1%eth0",
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_recognised(address: str) -> None:
    assert downloads.is_internal_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_not_internal(address: str) -> None:
    assert not downloads.is_internal_address(address)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "10.0.0.7", "192.168.0.10", "240.0.0.1", "127.0.0.1", "fd00::1", "::ffff:10.0.0.1"]
)
def test_link_local_private_and_reserved_targets_are_refused_before_any_connection(
    mocked: responses.RequestsMock,
    resolver: StubResolver,
    connections: list[Any],
    tmp_path: Path,
    address: str,
) -> None:
    url = "https://files.example.test/r/abc.mp4"
    resolver.names["files.example.test"] = [address]
    serve(mocked, url)
    with pytest.raises(RunwayDownloadError, match=r"Refusing .*loopback, private, link-local or reserved") as err:
        persist_task_result(make_task(video_url=url), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert not err.value.retryable
    assert address in str(err.value)
    assert requested(mocked, url) == 0  # no request was handed to the transport
    assert connections == []  # and no socket was opened
    assert list(tmp_path.iterdir()) == []


def test_a_host_with_any_internal_address_is_refused(
    mocked: responses.RequestsMock, resolver: StubResolver, tmp_path: Path
) -> None:
    url = "https://mixed.example.test/v.mp4"
    resolver.names["mixed.example.test"] = ["93.184.215.14", "10.0.0.1"]
    serve(mocked, url)
    with pytest.raises(RunwayDownloadError, match=r"10\.0\.0\.1"):
        persist_task_result(make_task(video_url=url), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert requested(mocked, url) == 0


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
        ("http://metadata.internal.test/computeMetadata/v1/", "169.254.169.254"),
        ("http://intranet.test:8080/admin", "10.20.30.40"),
        ("http://[::1]:9200/", "::1"),
        ("file:///etc/passwd", "only http"),
        ("ftp://files.test/r/abc.mp4", "only http"),
    ],
)
def test_redirects_are_checked_hop_by_hop(
    mocked: responses.RequestsMock,
    resolver: StubResolver,
    connections: list[Any],
    tmp_path: Path,
    location: str,
    message: str,
) -> None:
    resolver.names["metadata.internal.test"] = ["169.254.169.254"]
    resolver.names["intranet.test"] = ["10.20.30.40"]
    redirect(mocked, VIDEO_URL, location)
    if location.startswith("http"):
        serve(mocked, location)
    with pytest.raises(RunwayDownloadError, match=message) as err:
        persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert "Refusing" in str(err.value) and not err.value.retryable
    assert requested(mocked, VIDEO_URL) == 1
    assert requested(mocked, location) == 0
    assert connections == []
    assert list(tmp_path.iterdir()) == []


def test_relative_redirects_and_each_status_are_followed(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    hops = [f"https://files.test/hop{i}.mp4" for i in range(5)]
    redirect(mocked, VIDEO_URL, "/hop0.mp4", status=301)
    for status, (here, there) in zip((302, 303, 307, 308), itertools.pairwise(hops), strict=True):
        redirect(mocked, here, there, status=status)
    serve(mocked, hops[-1])
    result = persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert result["video_size"] == len(VIDEO)
    assert (tmp_path / NAME).read_bytes() == VIDEO
    assert [call.request.url for call in mocked.calls] == [VIDEO_URL, *hops]


def test_more_than_five_redirects_are_refused(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    hops = [f"https://files.test/hop{i}.mp4" for i in range(6)]
    redirect(mocked, VIDEO_URL, hops[0])
    for here, there in itertools.pairwise(hops):
        redirect(mocked, here, there)
    serve(mocked, hops[-1])
    with pytest.raises(RunwayDownloadError, match="more than 5 redirects"):
        persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert requested(mocked, hops[-1]) == 0
    assert list(tmp_path.iterdir()) == []


def test_the_api_host_and_allowed_hosts_may_be_internal(
    mocked: responses.RequestsMock, resolver: StubResolver, tmp_path: Path
) -> None:
    resolver.names["files.corp.test"] = ["10.1.2.3"]
    resolver.names["other.corp.test"] = ["10.1.2.4"]
    hook = HostsHook(base_url="http://127.0.0.1:8089", allowed=frozenset({"files.corp.test"}))
    on_api_host = "http://127.0.0.1:8089/files/abc.mp4"
    allowed = "https://files.corp.test/abc.mp4"
    other = "https://other.corp.test/abc.mp4"
    for url in (on_api_host, allowed, other):
        serve(mocked, url)
    for url in (on_api_host, allowed):
        result = persist_task_result(make_task(video_url=url), str(tmp_path / "ok"), hook=hook, include_thumbnail=False)
        assert result["video_size"] == len(VIDEO)
    with pytest.raises(RunwayDownloadError, match="download_allowed_hosts"):
        persist_task_result(make_task(video_url=other), str(tmp_path / "no"), hook=hook, include_thumbnail=False)
    assert requested(mocked, other) == 0
    assert not (tmp_path / "no").exists()


def test_a_name_that_resolves_elsewhere_after_the_check_is_not_connected(
    resolver: StubResolver, connections: list[Any], tmp_path: Path
) -> None:
    # DNS rebinding: public when checked, the metadata address when the connection is made.
    url = "https://rebind.example.test/v.mp4"
    resolver.names["rebind.example.test"] = ["93.184.215.14"]
    resolver.then["rebind.example.test"] = ["169.254.169.254"]
    with pytest.raises(RunwayDownloadError, match=r"Refusing to connect to rebind\.example\.test.*169\.254\.169\.254"):
        persist_task_result(make_task(video_url=url), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert resolver.lookups.count("rebind.example.test") == 2
    assert connections == []
    assert list(tmp_path.iterdir()) == []


def test_netrc_credentials_are_never_sent(
    mocked: responses.RequestsMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine files.test login alice password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    serve(mocked)
    persist_task_result(make_task(), str(tmp_path / "out"), hook=HostsHook(), include_thumbnail=False)
    sent = {key.lower(): value for key, value in mocked.calls[0].request.headers.items()}
    assert "authorization" not in sent


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, identity"])
def test_content_encoding_other_than_identity_is_refused(
    mocked: responses.RequestsMock, tmp_path: Path, encoding: str
) -> None:
    body = gzip.compress(VIDEO)
    serve(mocked, body=body, headers={"Content-Encoding": encoding, "Content-Length": str(len(body))})
    with pytest.raises(RunwayDownloadError, match="Content-Encoding") as err:
        persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert not err.value.retryable
    assert list(tmp_path.iterdir()) == []
    sent = {key.lower(): value for key, value in mocked.calls[0].request.headers.items()}
    assert sent["accept-encoding"] == "identity"


def test_identity_encoding_is_stored_as_sent(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    serve(mocked, headers={"Content-Encoding": "identity", "Content-Length": str(len(VIDEO))})
    persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), include_thumbnail=False)
    assert (tmp_path / NAME).read_bytes() == VIDEO


# -- object stores: a temporary key, then a move; a good copy survives a failed attempt ---------


GOOD_COPY = b"a good copy from an earlier run" * 10


@pytest.mark.parametrize("failure", ["cut_short", "over_cap", "broken_store"])
@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_failed_redownload_keeps_the_good_copy(
    mocked: responses.RequestsMock,
    memory_dest: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    failure: str,
) -> None:
    dest = memory_dest if kind == "memory" else f"file://{tmp_path}/videos/"
    final = stored_url(dest, NAME)
    fs, final_path = fsspec.core.url_to_fs(final)
    fs.makedirs(final_path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(final_path, GOOD_COPY)
    mocked.add(responses.HEAD, VIDEO_URL, status=405)  # no size from HEAD: the GET decides
    if failure == "cut_short":
        serve(mocked, headers={"Content-Length": str(len(VIDEO) + 100)})
    else:
        serve(mocked, headers={})
    if failure == "broken_store":
        monkeypatch.setattr(type(fs), "mv", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("store down")))
    with pytest.raises((RunwayDownloadError, OSError)):
        persist_task_result(
            make_task(),
            dest,
            hook=HostsHook(),
            include_thumbnail=False,
            max_bytes=len(VIDEO) // 2 if failure == "over_cap" else None,
        )
    assert read_stored(final) == GOOD_COPY
    if kind == "memory":
        assert memory_names(dest) == [NAME]  # no temporary object left behind
    else:
        assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [NAME]


def test_object_store_writes_a_temporary_key_then_moves_it(
    mocked: responses.RequestsMock, memory_dest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = fsspec.filesystem("memory")
    opened: list[str] = []
    moved: list[tuple[str, str]] = []
    real_open, real_mv = type(fs).open, type(fs).mv

    def recording_open(self: Any, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            opened.append(path)
        return real_open(self, path, mode, *args, **kwargs)

    def recording_mv(self: Any, source: str, target: str, *args: Any, **kwargs: Any) -> Any:
        moved.append((source, target))
        return real_mv(self, source, target, *args, **kwargs)

    monkeypatch.setattr(type(fs), "open", recording_open)
    monkeypatch.setattr(type(fs), "mv", recording_mv)
    serve(mocked)
    result = persist_task_result(make_task(), memory_dest, hook=HostsHook(), include_thumbnail=False)
    final = fsspec.core.url_to_fs(result["video_path"])[1]
    assert len(opened) == 1 and opened[0] != final
    assert opened[0].rsplit("/", 1)[0] == final.rsplit("/", 1)[0]
    assert opened[0].rsplit("/", 1)[1].startswith(f".{NAME}.") and opened[0].endswith(".part")
    assert moved == [(opened[0], final)]
    assert read_stored(result["video_path"]) == VIDEO
    assert memory_names(memory_dest) == [NAME]


def test_file_deadline_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(RunwayDownloadError, match="file_deadline"):
        persist_task_result(make_task(), str(tmp_path), hook=HostsHook(), file_deadline=0)
