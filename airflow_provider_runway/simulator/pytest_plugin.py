"""pytest fixtures for the Runway simulator; opt-in, loaded by one line in a ``conftest.py``::

    pytest_plugins = ["airflow_provider_runway.simulator.pytest_plugin"]

``runway_sim`` starts a fresh simulator per test with fast phases (0.1 s wait, 0.1 s queueing,
0.2 s generating; Aleph 0.1 s + 0.3 s), no concurrency limit and callbacks retried after 0.1 s.
Override fields with ``@pytest.mark.runway_sim(error_style="http", ...)`` or with indirect
parametrisation (``@pytest.mark.parametrize("runway_sim", [{"error_style": "http"}], indirect=True)``).
``runway_sim_factory(**fields)`` starts more simulators; all are stopped after the test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.thread import SimulatorThread

#: Any non-empty key is an account; tests can use this one.
TEST_API_KEY = "sim-test-key"

TEST_DEFAULTS: dict[str, Any] = {
    "wait_seconds": 0.1,
    "queueing_seconds": 0.1,
    "generating_seconds": 0.2,
    "aleph_wait_seconds": 0.1,
    "aleph_generating_seconds": 0.3,
    "concurrency_limit": 0,
    "rate_limit_creates": 0,
    "callback_retry_delay": 0.1,
    "callback_scan_interval": 0.02,
}


def fast_config(**overrides: Any) -> SimulatorConfig:
    """The fixtures' configuration with ``overrides`` applied."""
    return SimulatorConfig(**{**TEST_DEFAULTS, **overrides})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runway_sim(**fields): SimulatorConfig fields for the runway_sim fixture")


SimFactory = Callable[..., SimulatorThread]


@pytest.fixture
def runway_sim_factory() -> Iterator[SimFactory]:
    """Start simulators: ``factory(config=None, **fields)``; every one is stopped after the test."""
    started: list[SimulatorThread] = []

    def factory(config: SimulatorConfig | None = None, **fields: Any) -> SimulatorThread:
        cfg = dataclasses.replace(config, **fields) if config is not None else fast_config(**fields)
        sim = SimulatorThread(cfg).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def runway_sim(request: pytest.FixtureRequest, runway_sim_factory: SimFactory) -> SimulatorThread:
    """A running simulator with fast test phases; ``runway_sim.url`` is its base URL."""
    fields: dict[str, Any] = {}
    marker = request.node.get_closest_marker("runway_sim")
    if marker is not None:
        fields.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        fields.update(param)
    elif isinstance(param, str):
        fields["error_style"] = param
    return runway_sim_factory(**fields)


@pytest.fixture
def runway_sim_api_key() -> str:
    """An API key the simulator accepts."""
    return TEST_API_KEY
