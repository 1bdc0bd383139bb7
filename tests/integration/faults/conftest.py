"""Fixtures of the fault suite: one simulator and scenario harness shared by a module's tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # the scenarios live in bench/fault_scenarios.py
    sys.path.insert(0, str(REPO_ROOT))

from airflow_provider_runway.simulator import SimulatorConfig, SimulatorThread  # noqa: E402
from bench.fault_scenarios import SIM_FIELDS, Harness  # noqa: E402


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """A simulator with fast phases, a rewriting proxy in front of it and connections to both."""
    with SimulatorThread(SimulatorConfig(**SIM_FIELDS)) as sim:
        h = Harness(sim)
        try:
            yield h
        finally:
            h.close()


@pytest.fixture
def fresh(harness: Harness) -> Harness:
    """The harness with no tasks, counters, faults or proxy rewrites left from an earlier test."""
    harness.fresh()
    return harness
