"""Fixtures for RunwayHook integration tests: a ``runway_default`` connection to the simulator."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_runway.core.results import RunwayTask
from airflow_provider_runway.hooks.runway import RunwayHook

#: Long enough for Airflow's secret masker, and easy to search for in captured output.
API_KEY = "sk-kie-INTEGRATION-SECRET-0123456789abcdef"


def use_simulator(monkeypatch: pytest.MonkeyPatch, url: str, api_key: str = API_KEY, **extra: Any) -> None:
    """Point AIRFLOW_CONN_RUNWAY_DEFAULT (JSON form) at the simulator at ``url``."""
    conn = {"conn_type": "runway", "host": url, "password": api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


def wait_terminal(hook: RunwayHook, task_id: str, family: str = "runway", timeout: float = 20.0) -> RunwayTask:
    deadline = time.monotonic() + timeout
    while True:
        task = hook.get_task(task_id, family)
        if task.is_terminal:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task.status} after {timeout} s"
        time.sleep(0.05)


@pytest.fixture(params=["body", "http"])
def sim(request: pytest.FixtureRequest, runway_sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fast simulator in each error style, with runway_default pointing at it."""
    simulator = runway_sim_factory(error_style=request.param)
    use_simulator(monkeypatch, simulator.url)
    return simulator


@pytest.fixture
def hook(sim: Any) -> RunwayHook:
    return RunwayHook(retry_limit=3, retry_delay=0.01)
