"""Bounded resources: huge bodies are read with a cap, and every retry path stops after a counted number.

The huge bodies come from a server in a separate process, so the memory traced here is the
client's alone. Bodies are 32 MB; the client may hold the capped prefix and a few copies of it.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_runway.core import (
    GenerateRequest,
    RunwayCreateUncertainError,
    RunwayError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayTransportError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.errors import MAX_QUOTED_BODY
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.harness.faults import Harness
from tests.harness.leaks import API_KEY
from tests.harness.operators import RETRY_DELAY
from tests.harness.servers import big_body_server

BODY_BYTES = 32 * 1024 * 1024
#: Peak client memory while reading a huge error body (its cap is 64 KiB).
ERROR_BODY_PEAK = 2 * 1024 * 1024
#: Peak client memory while reading a huge 200 body (its cap is 1 MiB).
SUCCESS_BODY_PEAK = 8 * 1024 * 1024
MAX_MESSAGE = MAX_QUOTED_BODY + 200


@pytest.fixture
def big_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int, str, bool], str]]:
    """``big_conn(status, content_type, chunked)`` starts a huge-body server and points ``runway_big`` at it."""
    servers: list[Any] = []

    def start(status: int, content_type: str, chunked: bool) -> str:
        server = big_body_server(status, BODY_BYTES, content_type, chunked)
        url = server.__enter__()
        servers.append(server)
        conn = {"conn_type": "runway", "host": url, "password": API_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_BIG", json.dumps(conn))
        return url

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _peak_of_sync_read(hook: RunwayHook) -> tuple[Exception, int]:
    with pytest.raises(RunwayError):  # warm up: imports and connection parsing are not the body's cost
        hook.get_task("warm-up")
    tracemalloc.start()
    try:
        with pytest.raises(RunwayError) as raised:
            hook.get_task("0d9a3c4e-1b2f-4c5d-8e6f-7a8b9c0d1e2f")
        return raised.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _peak_of_async_read(hook: RunwayHook) -> tuple[Exception, int]:
    async with hook:
        with pytest.raises(RunwayError):
            await hook.aget_task("warm-up")
        tracemalloc.start()
        try:
            with pytest.raises(RunwayError) as raised:
                await hook.aget_task("0d9a3c4e-1b2f-4c5d-8e6f-7a8b9c0d1e2f")
            return raised.value, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("status", "content_type", "error", "peak"),
    [
        (500, "text/html", RunwayUnavailableError, ERROR_BODY_PEAK),
        (200, "application/json", RunwayProtocolError, SUCCESS_BODY_PEAK),
    ],
    ids=["error-page", "success-status"],
)
def test_huge_bodies_are_read_with_a_cap(
    big_conn, status: int, content_type: str, error: type, peak: int, chunked: bool
) -> None:
    big_conn(status, content_type, chunked)
    sync_error, sync_peak = _peak_of_sync_read(RunwayHook("runway_big", retry_limit=0))
    async_error, async_peak = asyncio.run(_peak_of_async_read(RunwayHook("runway_big", retry_limit=0)))
    for raised, used in ((sync_error, sync_peak), (async_error, async_peak)):
        assert isinstance(raised, error)
        assert len(str(raised)) <= MAX_MESSAGE  # the body is quoted, shortened
        assert "more chars]" in str(raised)
        assert used < peak, f"reading a {BODY_BYTES}-byte body peaked at {used} bytes"


@pytest.mark.integration
def test_a_create_never_reads_more_than_the_cap(big_conn) -> None:
    """A create answered by a huge HTML page fails as uncertain, quoting only a slice of it."""
    big_conn(502, "text/html", False)
    hook = RunwayHook("runway_big", retry_limit=3, retry_delay=0.01)
    with pytest.raises(RunwayCreateUncertainError) as raised:
        hook.create_task(GenerateRequest(prompt="a cat"))
    assert len(str(raised.value)) <= MAX_MESSAGE + 300


@pytest.mark.integration
@pytest.mark.parametrize("retry_limit", [0, 1, 4])
def test_a_permanent_500_storm_ends_after_a_counted_number_of_reads(fresh: Harness, retry_limit: int) -> None:
    """The sync path: one read tries ``retry_limit + 1`` times, with a growing back-off between tries."""
    created = fresh.create_many(1, conn_id="runway_default")
    fresh.sim.inject_fault("record-detail", "http500", fraction=1.0)
    hook = fresh.hook("runway_default", retry_limit=retry_limit)
    waits: list[float] = []
    hook._sleep = waits.append
    with pytest.raises(RunwayUnavailableError):
        hook.get_task(created[0].task_id or "")
    assert fresh.requests("record-detail") == retry_limit + 1
    assert len(waits) == retry_limit
    # Exponential with equal jitter: retry n waits within [d * 2**(n-1) / 2, d * 2**(n-1)].
    for attempt, wait in enumerate(waits, start=1):
        base = RETRY_DELAY * 2 ** (attempt - 1)
        assert base / 2 <= wait <= base


@pytest.mark.integration
def test_a_permanent_429_storm_on_create_ends_without_creating(fresh: Harness) -> None:
    fresh.sim.inject_fault("generate", "http429", fraction=1.0, retry_after=0.02)
    hook = fresh.hook("runway_default", retry_limit=3)
    waits: list[float] = []
    hook._sleep = waits.append
    with pytest.raises(RunwayRateLimitedError):
        hook.create_task(GenerateRequest(prompt="a cat"))
    assert fresh.requests("generate") == 4
    assert fresh.creations() == 0
    assert len(waits) == 3 and min(waits) >= 0.02  # Retry-After honoured on every retry


@pytest.mark.integration
def test_a_trigger_waits_at_least_retry_after_between_429s(fresh: Harness) -> None:
    """The async path honours ``Retry-After`` too (a lower bound on time: sleeps are never shorter)."""
    created = fresh.create_many(1, conn_id="runway_default")
    fresh.sim.inject_fault("record-detail", "http429", count=2, retry_after=0.3)
    started = time.monotonic()
    events = fresh.wait_all([created[0].task_id or ""], "runway_default")
    assert events[0]["status"] == "success"
    assert time.monotonic() - started >= 0.6
    assert fresh.counters()["faults_fired"].get("http429") == 2


@pytest.mark.integration
def test_a_slow_answer_is_cut_by_the_timeouts_sync_and_async(fresh: Harness) -> None:
    """With no retries left, a read slower than its time limit fails as a transport error, not late.

    On the worker the read timeout bounds the wait for the answer (requests); in the triggerer one timer
    bounds the request as a whole, connect_timeout + read_timeout (no timer armed again per chunk).
    """
    created = fresh.create_many(1, conn_id="runway_default")
    task_id = created[0].task_id or ""
    hook = fresh.hook("runway_faults", retry_limit=0)  # read_timeout 0.5 s, connect_timeout 2 s
    fresh.sim.inject_fault("record-detail", "slow", count=1, delay=1.2)
    started = time.monotonic()
    with pytest.raises(RunwayTransportError, match="Timeout"):
        hook.get_task(task_id)
    assert time.monotonic() - started < 1.2

    async def read() -> None:
        async with hook:
            await hook.aget_task(task_id)

    fresh.sim.inject_fault("record-detail", "slow", count=1, delay=4.0)
    started = time.monotonic()
    with pytest.raises(RunwayTransportError, match="Timeout"):
        asyncio.run(read())
    assert 2.4 <= time.monotonic() - started < 4.0
    # Let the simulator finish the abandoned slow answer before it is stopped.
    time.sleep(max(0.0, started + 4.0 - time.monotonic()))


@pytest.mark.integration
def test_an_absurd_retry_after_is_capped(fresh: Harness) -> None:
    """A server asking for a day's pause gets at most MAX_RETRY_AFTER seconds, then the create goes through."""
    from airflow_provider_runway.core.retry import MAX_RETRY_AFTER

    fresh.sim.inject_fault("generate", "http429", count=1, retry_after=86400)
    hook = fresh.hook("runway_default", retry_limit=2)
    waits: list[float] = []
    hook._sleep = waits.append  # recorded, not slept
    assert hook.create_task(GenerateRequest(prompt="a cat"))
    assert len(waits) == 1
    assert 0 < waits[0] <= MAX_RETRY_AFTER
    assert fresh.creations() == 1


@pytest.mark.integration
def test_a_trigger_backs_off_between_failed_reads_and_polls(fresh: Harness) -> None:
    """Inside a poll the hook backs off exponentially; between failed polls the trigger does too.

    retry_delay 0.1 s, 3 tries per poll, 3 polls: at least (0.05 + 0.1) x 3 within polls and
    0.05 + 0.1 between them, 0.6 s in all (a lower bound: a sleep is never shorter), for exactly
    nine reads.
    """
    created = fresh.create_many(1, conn_id="runway_default")
    fresh.sim.inject_fault("record-detail", "http500", fraction=1.0)
    trigger = fresh.trigger(
        created[0].task_id or "",
        "runway_default",
        retry_limit=2,
        retry_delay=0.1,
        max_consecutive_errors=3,
        poll_interval=0.01,
    )
    started = time.monotonic()
    events = fresh.run_triggers([trigger])
    assert events[0]["status"] == "error"
    assert "3 consecutive failed status reads" in events[0]["message"]
    assert time.monotonic() - started >= 0.6
    assert fresh.requests("record-detail") == 9
