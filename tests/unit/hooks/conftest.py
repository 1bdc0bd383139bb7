"""Fixtures for the RunwayHook unit tests: a connection from the environment and a hook that never sleeps."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_runway.hooks.runway import RunwayHook

API_KEY = "sk-kie-UNIT-TEST-SECRET-0123456789abcdef"
BASE = "http://runway.test"


def set_connection(monkeypatch: pytest.MonkeyPatch, value: dict | str) -> None:
    """Point AIRFLOW_CONN_RUNWAY_DEFAULT at ``value`` (JSON form for a dict, URI form for a str)."""
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(value) if isinstance(value, dict) else value)


@pytest.fixture
def runway_conn(monkeypatch: pytest.MonkeyPatch) -> dict:
    conn = {"conn_type": "runway", "host": BASE, "password": API_KEY}
    set_connection(monkeypatch, conn)
    return conn


class SleepRecorder:
    """Stands in for time.sleep / asyncio.sleep so retry tests are instant and can see the waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def hook(runway_conn: dict, sleeps: SleepRecorder) -> RunwayHook:
    hook = RunwayHook(retry_limit=3, retry_delay=0.01)
    hook._sleep = sleeps
    hook._asleep = sleeps.asleep
    return hook


@pytest.fixture
def stdlib_log(caplog: pytest.LogCaptureFixture):
    """Route a hook's log through a stdlib logger at DEBUG so caplog sees every line, debug included."""
    caplog.set_level(logging.DEBUG)

    def attach(hook: RunwayHook) -> RunwayHook:
        hook._log = logging.getLogger("tests.runway.hook")  # type: ignore[assignment]
        return hook

    return attach
