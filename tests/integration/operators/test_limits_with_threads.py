"""Batches against the account's rate and concurrency limits: operators run in threads against the simulator.

The same proofs as ``tests/e2e/test_concurrency_and_rate_on_airflow_processes.py`` without Airflow's
processes: threads stand in for worker slots, so the batch reaches KIE's real rate limit (20 creates per
10 s) and a "pool" of 20 threads overruns an account limit of 10. Each operator runs ``execute`` as a
worker would (synchronous wait, no resume record), against one simulator over loopback HTTP.
"""

from __future__ import annotations

import inspect
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.simulator.client import SimulatorClient
from tests.integration.conftest import SIM_API_KEY

pytestmark = pytest.mark.integration


class TaskInstance:
    """What the operators read from and write to a task instance."""

    def __init__(self, index: int) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "limits", "run", "generate", index
        self.try_number, self.start_date = 1, None
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run_batch(sim: Any, monkeypatch: pytest.MonkeyPatch, count: int, slots: int) -> list[dict[str, Any]]:
    """Run ``count`` generate operators, at most ``slots`` at once; return their results in order."""
    conn = {"conn_type": "runway", "host": sim.url, "password": SIM_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))

    def one(index: int) -> dict[str, Any]:
        op = RunwayGenerateOperator(
            task_id=f"generate_{index}", prompt=f"Shot {index}", poll_interval=0.2, durable=False, timeout=300
        )
        # Without Airflow's guard against calling execute() outside a task runner: Airflow 2 keeps its
        # state per thread, and these threads stand in for task runners.
        execute = inspect.unwrap(type(op).execute)
        return execute(op, {"ti": TaskInstance(index)})  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=slots) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.runway_sim(rate_limit_creates=20, rate_limit_window=10.0, generating_seconds=0.5)
def test_forty_creates_against_20_per_10_seconds(runway_sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    results = run_batch(runway_sim, monkeypatch, count=40, slots=40)
    counters = SimulatorClient(runway_sim.url).counters()
    print(
        f"\n40 creates, 20 per 10 s: {time.monotonic() - started:.1f}s; 429s answered: "
        f"{counters['rate_limited_total']}; generate requests: {counters['requests']['generate']}; "
        f"tasks_created: {counters['tasks_created']}"
    )
    assert [r["state"] for r in results] == ["succeeded"] * 40
    assert len({r["task_id"] for r in results}) == 40
    assert counters["rate_limited_total"] > 0  # the limit was reached: the proof is not vacuous
    assert sum(counters["tasks_created"].values()) == 40  # none paid twice
    assert counters["tasks_by_state"] == {"success": 40}


@pytest.mark.runway_sim(concurrency_limit=10, concurrency_mode="fail_task", generating_seconds=1.0)
def test_thirty_through_a_pool_of_20_against_a_limit_of_10(runway_sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    results = run_batch(runway_sim, monkeypatch, count=30, slots=20)
    counters = SimulatorClient(runway_sim.url).counters()
    print(
        f"\n30 through 20 slots, account limit 10: {time.monotonic() - started:.1f}s; concurrency failures: "
        f"{counters['concurrency_failures']}; generate requests: {counters['requests']['generate']}; "
        f"tasks_created: {counters['tasks_created']}; credits_spent: {counters['credits_spent']}"
    )
    assert [r["state"] for r in results] == ["succeeded"] * 30  # every operator succeeded in its one try
    assert sum(counters["concurrency_failures"].values()) > 0  # the pool did overrun the account's limit
    assert sum(counters["tasks_created"].values()) == 30
    assert counters["tasks_by_state"]["success"] == 30
