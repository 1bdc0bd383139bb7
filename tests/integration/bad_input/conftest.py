"""Fixtures of the bad-input suite: a simulator behind the default Runway connection."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_runway.simulator import SimulatorThread

API_KEY = "sk-BADINPUT-5d1e0b"


def _point_connection(monkeypatch: pytest.MonkeyPatch, sim: SimulatorThread, extra: dict[str, Any]) -> None:
    conn: dict[str, Any] = {"conn_type": "runway", "host": sim.url, "password": API_KEY}
    if extra:
        conn["extra"] = extra
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


@pytest.fixture
def sim(runway_sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> SimulatorThread:
    """The simulator, reachable through ``runway_default``."""
    _point_connection(monkeypatch, runway_sim, {})
    return runway_sim


@pytest.fixture
def connection_extra(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``connection_extra(**extra)`` re-points ``runway_default`` at the simulator with that extra."""

    def apply(**extra: Any) -> None:
        _point_connection(monkeypatch, sim, extra)

    return apply
