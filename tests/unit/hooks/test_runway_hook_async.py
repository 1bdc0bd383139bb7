"""Unit tests of RunwayHook's async API (used by the trigger), HTTP mocked with ``aioresponses``."""

from __future__ import annotations

import asyncio
import re
import threading

import aiohttp
import pytest
from aioresponses import aioresponses
from airflow.providers.common.compat.sdk import BaseHook, Connection

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayNotFoundError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.unit.hooks.aiohttp_compat import mock_aiohttp
from tests.unit.hooks.conftest import API_KEY, BASE, set_connection

DETAIL = re.compile(rf"^{re.escape(BASE)}/api/v1/runway/record-detail\?taskId=t-1$")
ALEPH_INFO = re.compile(rf"^{re.escape(BASE)}/api/v1/aleph/record-info\?taskId=a-1$")

RUNNING = {"code": 200, "msg": "success", "data": {"taskId": "t-1", "state": "generating"}}
SUCCESS = {
    "code": 200,
    "msg": "success",
    "data": {"taskId": "t-1", "state": "success", "videoInfo": {"videoUrl": "https://cdn.test/v.mp4"}},
}


@pytest.fixture
def mocked():
    with mock_aiohttp() as mock:
        yield mock


def calls(mock: aioresponses) -> int:
    return sum(len(v) for v in mock.requests.values())


@pytest.mark.asyncio
async def test_one_session_for_the_whole_wait(hook, mocked, monkeypatch):
    created: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession

    class CountingSession(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(aiohttp, "ClientSession", CountingSession)
    mocked.get(DETAIL, payload=RUNNING)
    mocked.get(DETAIL, payload=RUNNING)
    mocked.get(DETAIL, payload=SUCCESS)
    async with hook:
        session = hook._asession
        assert session is not None
        assert session.headers["Authorization"] == f"Bearer {API_KEY}"
        assert session.headers["User-Agent"] == f"airflow-provider-runway/{__version__}"
        states = [(await hook.aget_task("t-1")).status for _ in range(3)]
    assert states == [TaskStatus.RUNNING, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert len(created) == 1
    assert session.closed and hook._asession is None


@pytest.mark.asyncio
async def test_connection_is_read_with_the_async_api(hook, mocked, monkeypatch):
    """``aget_connection`` where it masks asynchronously (3.3.2+); before it the sync lookup, off the loop's thread."""
    loop_thread = threading.get_ident()
    sync_lookup = RunwayHook.get_connection.__func__  # type: ignore[attr-defined]

    def lookup_off_the_loop(cls, *args, **kwargs):
        if hasattr(BaseHook, "aget_connection") and hasattr(Connection, "aextra_dejson"):
            raise AssertionError("the synchronous connection lookup must not be used in async code")
        assert threading.get_ident() != loop_thread, "the connection was read on the event loop's thread"
        return sync_lookup(cls, *args, **kwargs)

    monkeypatch.setattr(RunwayHook, "get_connection", classmethod(lookup_off_the_loop))
    mocked.get(DETAIL, payload=SUCCESS)
    async with hook:
        assert hook.base_url == BASE
        task = await hook.aget_task("t-1")
    assert task.video_url == "https://cdn.test/v.mp4"


@pytest.mark.asyncio
async def test_outside_context_opens_and_closes_a_temporary_session(hook, mocked):
    mocked.get(ALEPH_INFO, payload={"code": 200, "msg": "success", "data": {"taskId": "a-1", "successFlag": 0}})
    task = await hook.aget_task("a-1", family=TaskFamily.ALEPH)
    assert (task.family, task.status) == (TaskFamily.ALEPH, TaskStatus.PENDING)
    assert hook._asession is None


@pytest.mark.asyncio
async def test_nested_contexts_share_the_session(hook, mocked):
    async with hook:
        outer = hook._asession
        async with hook:
            assert hook._asession is outer
        assert hook._asession is outer and not outer.closed
    assert outer.closed


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["http", "body"])
@pytest.mark.parametrize(("code", "error"), [(401, RunwayAuthError), (404, RunwayNotFoundError)])
async def test_errors_both_styles_not_retried(hook, mocked, sleeps, style, code, error):
    mocked.get(DETAIL, status=code if style == "http" else 200, payload={"code": code, "msg": "nope"})
    mocked.get(DETAIL, payload=SUCCESS)
    with pytest.raises(error):
        await hook.aget_task("t-1")
    assert calls(mocked) == 1 and sleeps.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["http", "body"])
async def test_429_retried_honouring_retry_after(hook, mocked, sleeps, style):
    mocked.get(
        DETAIL,
        status=429 if style == "http" else 200,
        payload={"code": 429, "msg": "slow"},
        headers={"Retry-After": "9"},
    )
    mocked.get(DETAIL, payload=SUCCESS)
    assert (await hook.aget_task("t-1")).status is TaskStatus.SUCCEEDED
    assert len(sleeps.calls) == 1 and 9 <= sleeps.calls[0] <= 10


@pytest.mark.asyncio
async def test_transient_failures_retried(hook, mocked, sleeps):
    mocked.get(DETAIL, exception=asyncio.TimeoutError())
    mocked.get(DETAIL, exception=aiohttp.ServerDisconnectedError())
    mocked.get(DETAIL, status=200, body="<html>oops</html>")
    mocked.get(DETAIL, payload=SUCCESS)
    assert (await hook.aget_task("t-1")).status is TaskStatus.SUCCEEDED
    assert len(sleeps.calls) == 3


@pytest.mark.asyncio
async def test_gives_up_after_retry_limit(hook, mocked):
    for _ in range(6):
        mocked.get(DETAIL, status=503, payload={"code": 503, "msg": "busy"})
    with pytest.raises(RunwayUnavailableError):
        await hook.aget_task("t-1")
    assert calls(mocked) == 4


@pytest.mark.asyncio
async def test_persistent_429_surfaces_retry_after(hook, mocked):
    for _ in range(4):
        mocked.get(DETAIL, status=429, payload={"code": 429, "msg": "slow"}, headers={"Retry-After": "3"})
    with pytest.raises(RunwayRateLimitedError) as caught:
        await hook.aget_task("t-1")
    assert caught.value.retry_after == 3


@pytest.mark.asyncio
async def test_null_data_is_a_protocol_error(runway_conn, mocked):
    mocked.get(DETAIL, payload={"code": 200, "msg": "success", "data": None})
    with pytest.raises(RunwayProtocolError, match="no task data"):
        await RunwayHook(retry_limit=0).aget_task("t-1")


@pytest.mark.asyncio
async def test_key_never_in_async_errors(hook, mocked, capfd):
    mocked.get(DETAIL, exception=aiohttp.ClientOSError(f"reset; Authorization: Bearer {API_KEY}"))
    mocked.get(DETAIL, status=401, payload={"code": 401, "msg": f"bad key {API_KEY}"})
    with pytest.raises(RunwayAuthError) as caught:
        await hook.aget_task("t-1")
    out, err = capfd.readouterr()
    for text in (str(caught.value), repr(caught.value), out, err):
        assert API_KEY not in text
    assert "reset" in out + err  # the transient error was logged, scrubbed


@pytest.mark.asyncio
async def test_waits_on_one_loop_share_a_session(runway_conn, mocked):
    first, second = RunwayHook(), RunwayHook()
    async with first:
        async with second:
            assert first._asession is second._asession
        assert not first._asession.closed  # still in use by the first wait
        shared = first._asession
    assert shared.closed


@pytest.mark.asyncio
async def test_a_rotated_key_is_used_by_the_next_wait(runway_conn, monkeypatch, mocked):
    """No connection read is kept across waits: the next wait reads the connection again and sends the new key."""
    sent: list[str] = []

    def record(url, **kwargs):
        sent.append(kwargs["headers"]["Authorization"])

    mocked.get(DETAIL, payload=SUCCESS, callback=record, repeat=True)
    async with RunwayHook() as before:
        await before.aget_task("t-1")
    set_connection(monkeypatch, {**runway_conn, "password": "rotated-key-0002"})
    async with RunwayHook() as after:
        await after.aget_task("t-1")
    assert sent == [f"Bearer {API_KEY}", "Bearer rotated-key-0002"]


@pytest.mark.asyncio
async def test_different_settings_get_different_sessions(runway_conn):
    async with RunwayHook() as default, RunwayHook(timeout=3) as short:
        assert default._asession is not short._asession
        # One timer per request: connect + read bound the request as a whole, no per-chunk sock_read timer.
        assert short._asession.timeout.sock_read is None
        assert short._asession.timeout.total == default._asession.timeout.sock_connect + 3


@pytest.mark.asyncio
async def test_a_burst_of_waits_reads_the_connection_once(runway_conn, monkeypatch):
    reads: list[str] = []
    original = RunwayHook._aread_connection

    async def slow_read(self):
        reads.append(self.runway_conn_id)
        await asyncio.sleep(0.05)
        return await original(self)

    monkeypatch.setattr(RunwayHook, "_aread_connection", slow_read)
    hooks = [RunwayHook() for _ in range(50)]
    await asyncio.gather(*(hook.__aenter__() for hook in hooks))
    assert len(reads) == 1
    assert len({id(hook._asession) for hook in hooks}) == 1
    await asyncio.gather(*(hook.__aexit__(None, None, None) for hook in hooks))


@pytest.mark.asyncio
@pytest.mark.parametrize("broken", ["", '{"conn_type": "runway", "host": "http://runway.test"}'])
async def test_a_failed_shared_read_reaches_every_caller_and_is_retried(monkeypatch, broken):
    if broken:
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", broken)  # no API key
    else:
        monkeypatch.delenv("AIRFLOW_CONN_RUNWAY_DEFAULT", raising=False)  # no connection at all
    results = await asyncio.gather(*(RunwayHook().__aenter__() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)
    assert len({type(result) for result in results}) == 1
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT",
        f'{{"conn_type": "runway", "host": "http://runway.test", "password": "{API_KEY}"}}',
    )
    async with RunwayHook() as hook:
        assert hook.base_url == "http://runway.test"


@pytest.mark.parametrize(
    ("family", "record"),
    [
        ("runway", {"taskId": "t-1", "state": "wait", "generateTime": "2026-01-01 00:00:00"}),
        ("runway", {"taskId": "t-1", "state": "queueing", "videoInfo": None}),
        ("runway", {"taskId": "t-1", "state": "generating", "expireFlag": 0}),
        ("aleph", {"taskId": "t-1", "successFlag": 0, "errorCode": None, "errorMessage": None}),
        ("aleph", {"taskId": "t-1", "successFlag": 0, "response": {"taskId": "t-1"}}),
    ],
)
def test_pending_fast_path_agrees_with_the_full_normalisation(family: str, record: dict) -> None:
    from airflow_provider_runway.core.results import parse_record
    from airflow_provider_runway.core.results import parse_unfinished as _pending_task

    fast = _pending_task(TaskFamily.coerce(family), record, "t-1")
    full = parse_record(family, record, "t-1")
    assert fast is not None
    assert (fast.task_id, fast.family, fast.status, fast.raw_state) == (
        full.task_id,
        full.family,
        full.status,
        full.raw_state,
    )


@pytest.mark.parametrize(
    ("family", "record"),
    [
        ("runway", {"taskId": "t-1", "state": "success", "videoInfo": {"videoUrl": "https://cdn.test/v.mp4"}}),
        ("runway", {"taskId": "t-1", "state": "fail", "failMsg": "no"}),
        ("runway", {"taskId": "t-1", "state": " Generating "}),  # odd spelling: the full path decides
        ("runway", {"taskId": "t-1", "status": "wait"}),
        ("aleph", {"taskId": "t-1", "successFlag": 1}),
        ("aleph", {"taskId": "t-1", "successFlag": 0, "errorCode": 500}),
        ("aleph", {"taskId": "t-1", "successFlag": 0, "errorMessage": "bad"}),
        ("aleph", {"taskId": "t-1", "successFlag": False}),
        ("runway", ["not", "a", "record"]),
    ],
)
def test_anything_but_plainly_pending_takes_the_full_path(family: str, record: object) -> None:
    from airflow_provider_runway.core.results import parse_unfinished as _pending_task

    assert _pending_task(TaskFamily.coerce(family), record, "t-1") is None
