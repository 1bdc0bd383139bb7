"""Fixtures for RunwayTaskTrigger integration tests: runway_default pointing at the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.hooks.conftest import use_simulator


@pytest.fixture(params=["body", "http"])
def sim(request: pytest.FixtureRequest, runway_sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fast simulator in each error style, with runway_default pointing at it."""
    simulator = runway_sim_factory(error_style=request.param)
    use_simulator(monkeypatch, simulator.url)
    return simulator
