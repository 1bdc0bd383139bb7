"""Fixtures of the fault suite: one simulator and scenario harness shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_runway.simulator import SimulatorConfig, SimulatorThread
from tests.harness.faults import SIM_FIELDS, Harness


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
