"""Fixtures of the simulator's integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.simulator.sim_helpers import Api, Receiver


@pytest.fixture
def api(runway_sim) -> Api:
    """A KIE-style client of the ``runway_sim`` fixture's simulator."""
    return Api(runway_sim.url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver on 127.0.0.1."""
    recv = Receiver().start()
    yield recv
    recv.stop()
