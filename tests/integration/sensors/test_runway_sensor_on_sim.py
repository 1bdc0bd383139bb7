"""RunwayTaskSensor in real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_runway.operators.runway import RunwayAlephOperator, RunwayGenerateOperator
from airflow_provider_runway.sensors.runway import RunwayTaskSensor
from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from tests.integration.airflow_compat import reschedule_count

pytestmark = pytest.mark.integration

_ids = itertools.count()
MODES: list[Any] = [
    {"mode": "poke"},
    pytest.param(
        {"mode": "reschedule"},
        marks=pytest.mark.skipif(
            AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
            reason="Airflow 3.0's Task SDK client returns the first reschedule date unparsed (a string), so any "
            "sensor fails with a TypeError at its first poke after a reschedule (fixed in 3.1)",
        ),
        id="reschedule",
    ),
    {"deferrable": True},
]
MODE_IDS = ["poke", "reschedule", "deferrable"]


class ReleasingSensor(RunwayTaskSensor):
    """Releases the paused simulator after a poke that found the task still running.

    With the simulator paused before the run, the first poke sees the generation held in ``generating`` however
    long Airflow takes to start the sensor; the next poke sees it finished.
    """

    def poke(self, context: Any) -> Any:
        result = super().poke(context)
        if not result:
            SimulatorClient(self.hook.base_url).resume()
        return result


def submit_and_wait(
    name: str,
    failures: Any = None,
    *,
    aleph: bool = False,
    sensor_class: type[RunwayTaskSensor] = RunwayTaskSensor,
    **sensor_kwargs: Any,
) -> DAG:
    with DAG(f"{name}_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        if aleph:
            submit: Any = RunwayAlephOperator(
                task_id="submit", prompt="x", video_url="https://example.com/in.mp4", wait_for_completion=False
            )
        else:
            submit = RunwayGenerateOperator(task_id="submit", prompt="x", wait_for_completion=False)
        callback = {"on_failure_callback": failures[0]} if failures else {}
        sensor_class(
            task_id="wait",
            runway_task_id=XComArg(submit, key="task_id"),
            family="aleph" if aleph else "runway",
            poke_interval=0.05,
            **callback,
            **sensor_kwargs,
        )
    return dag


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_sensor_success(mode: dict[str, Any], runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    rescheduling = mode.get("mode") == "reschedule"
    if rescheduling:
        runway_conn.pause()  # still running at the first poke, however long Airflow takes to start the sensor
    sensor_class = ReleasingSensor if rescheduling else RunwayTaskSensor
    dr = run_dag(submit_and_wait("sensor_ok", sensor_class=sensor_class, **mode))
    assert ti_states(dr)["wait"][0] == "success"
    result = xcom(dr, "wait")
    assert result["task_id"] == xcom(dr, "submit", "task_id")
    assert result["state"] == "succeeded"
    assert result["video_url"].startswith(runway_conn.url)
    assert runway_conn.task_info(result["task_id"])["state"] == "success"
    if mode.get("mode") == "reschedule":
        assert reschedules(dr, "wait") >= 1


def reschedules(dag_run: Any, task_id: str) -> int:
    """How often the sensor gave its worker slot back (``reschedule`` mode)."""
    return reschedule_count(dag_run.dag_id, dag_run.run_id, task_id)


def test_sensor_on_an_aleph_task(runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    dr = run_dag(submit_and_wait("sensor_aleph", aleph=True, deferrable=True))
    assert ti_states(dr)["wait"] == ("success", 1)
    assert xcom(dr, "wait")["family"] == "aleph"


@pytest.mark.runway_sim(failure_rate=1.0)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_sensor_fails_on_remote_failure(
    mode: dict[str, Any], runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    dr = run_dag(submit_and_wait("sensor_fail", failures, timeout=60, **mode))
    assert ti_states(dr)["wait"][0] == "failed"
    assert len(failures[1]) == 1
    assert failures[1][0].startswith("AirflowFailException: Runway task")
    assert "failed (fail code" in failures[1][0]


@pytest.mark.runway_sim(failure_rate=1.0)
@pytest.mark.parametrize("mode", [{"mode": "poke"}, {"deferrable": True}], ids=["poke", "deferrable"])
def test_sensor_soft_fail_skips_on_remote_failure(
    mode: dict[str, Any], runway_conn: Any, run_dag: Any, ti_states: Any
) -> None:
    dr = run_dag(submit_and_wait("sensor_soft", soft_fail=True, **mode))
    assert ti_states(dr)["wait"][0] == "skipped"


@pytest.mark.parametrize("mode", [{"mode": "poke"}, {"deferrable": True}], ids=["poke", "deferrable"])
def test_sensor_timeout(mode: dict[str, Any], runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any) -> None:
    runway_conn.pause()
    dr = run_dag(submit_and_wait("sensor_timeout", failures, timeout=0.5, **mode))
    assert ti_states(dr)["wait"][0] == "failed"
    assert len(failures[1]) == 1
    assert failures[1][0].startswith("AirflowSensorTimeout")


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's Task SDK client returns the first reschedule date unparsed: any reschedule sensor fails",
)
def test_reschedule_sensor_on_an_unknown_task_fails_after_the_grace(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reschedule is a new sensor object; the 404 grace still counts from the first try's start.

    Before, the grace lived in the sensor's attributes, so a mistyped id was polled until the sensor's
    timeout. Here the timeout is 10 minutes and the grace 6 s: the sensor must fail as "not found",
    after a few reschedules, within the grace plus one poke.
    """
    import time

    from airflow_provider_runway.core import wait as wait_module

    grace, poke = 6.0, 1.0  # the grace counts from the try's start, so it includes the task's start-up
    monkeypatch.setattr(wait_module, "NOT_FOUND_GRACE_SECONDS", grace)
    with DAG(f"sensor_unknown_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        RunwayTaskSensor(
            task_id="wait",
            runway_task_id="never-created-0123",
            mode="reschedule",
            poke_interval=poke,
            timeout=600,
            on_failure_callback=failures[0],
        )
    started = time.monotonic()
    dr = run_dag(dag)
    elapsed = time.monotonic() - started
    print(f"reschedule sensor on an unknown id failed after {elapsed:.1f} s (grace {grace} s, poke {poke} s)")
    assert ti_states(dr)["wait"][0] == "failed"
    assert failures[1] == [failures[1][0]] and failures[1][0].startswith("AirflowFailException: Runway task")
    assert "never-created-0123 was not found" in failures[1][0]
    assert reschedules(dr, "wait") >= 2  # it really was rescheduled, and still remembered when it began
    reads = runway_conn.counters()["requests"]["record-detail"]
    assert reads <= grace / poke + 2  # within the grace plus one poke: no poke past the grace but the last
