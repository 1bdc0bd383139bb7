"""Fixtures for persistence tests: a Runway connection to the simulator and finished tasks."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from airflow_provider_runway.core.models import AlephRequest, GenerateRequest
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY
from tests.integration.airflow_compat import serialize_dag


def connect(monkeypatch: pytest.MonkeyPatch, url: str) -> RunwayHook:
    """Point ``runway_default`` at the simulator at ``url`` and return a hook for it."""
    conn = {"conn_type": "runway", "host": url, "password": TEST_API_KEY, "extra": {"retry_delay": 0.05}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return RunwayHook("runway_default")


def finish_task(hook: RunwayHook, family: str = "runway", timeout: float = 20.0) -> dict[str, Any]:
    """Create a task on the simulator and poll until it is terminal; returns the task dict."""
    if family == "aleph":
        request: Any = AlephRequest(prompt="Make it snow", video_url="https://example.com/in.mp4")
    else:
        request = GenerateRequest(prompt="A paper boat in the rain", duration=5, quality="720p", aspect_ratio="16:9")
    task_id = hook.create_task(request)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = hook.get_task(task_id, family)
        if task.is_terminal:
            return task.to_dict()
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish within {timeout} s")


def file_requests(sim: SimulatorClient) -> int:
    return int(sim.counters()["requests"].get("files", 0))


@pytest.fixture
def sim_hook(runway_sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunwayHook]:
    yield connect(monkeypatch, runway_sim.url)


@pytest.fixture
def finished(sim_hook: RunwayHook) -> Callable[..., dict[str, Any]]:
    def make(family: str = "runway") -> dict[str, Any]:
        return finish_task(sim_hook, family)

    return make


def serialize(dag: Any) -> None:
    """Store ``dag`` in the metadata DB, as the DAG processor would."""
    serialize_dag(dag)


def run_dag(dag: Any) -> Any:
    """Store ``dag`` in the metadata DB (``dag.test()`` requires it) and run it once."""
    serialize(dag)
    return dag.test()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def airflow_api(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token) of Airflow's REST API on loopback (simple auth manager, all users admin)."""
    from airflow.api_fastapi.app import create_app

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    with serve_asgi(create_app("core")) as base:
        token = requests.get(f"{base}/auth/token", timeout=10).json()["access_token"]
        yield base, str(token)
