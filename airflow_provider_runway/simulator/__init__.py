"""runway-sim: a local simulator of KIE.ai's Runway and Aleph API.

It serves the documented endpoints over real HTTP with a lazily computed task state machine,
credits, the concurrency and rate limits, callbacks, KIE's File Upload API (uploaded files are
served back at their ``downloadUrl``) and fault injection, so the provider can be tested and
demonstrated without an account. Start it with the ``runway-sim`` command, in-process with
:class:`SimulatorThread`, or in pytest with the ``runway_sim`` fixture.
"""

from __future__ import annotations

from airflow_provider_runway.simulator.client import SimulatorClient, SimulatorError
from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.engine import account_label
from airflow_provider_runway.simulator.pricing import credit_cost
from airflow_provider_runway.simulator.server import RunwaySimulator
from airflow_provider_runway.simulator.thread import SimulatorThread

__all__ = [
    "RunwaySimulator",
    "SimulatorClient",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorThread",
    "account_label",
    "credit_cost",
]
