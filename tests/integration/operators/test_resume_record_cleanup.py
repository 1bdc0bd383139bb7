"""The resume record never outlives its task instance, and a retry still attaches instead of paying twice.

Below Airflow 3.3 the operators keep the created Runway task id in an Airflow Variable
(``runway_provider_resume:...``) so that a later try attaches to that task; on 3.3 it lives in the
task instance's ``task_state_store`` and no Variable is written at all. Each test runs a real DAG
with ``dag.test()`` against the simulator while a thread reads the ``runway*`` Variables straight
from the metadata DB: below 3.3 the record must appear while the Runway task runs (so the check is
live) and be gone after every end of the task instance; on 3.3 no such Variable may appear ever.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowSkipException

from airflow_provider_runway.operators._resumable import VARIABLE_PREFIX
from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS
from tests.integration.airflow_compat import runway_variables

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {"poll_interval": 0.05}
#: Variables are the resume store only below Airflow 3.3.
USES_VARIABLE = not AIRFLOW_V_3_3_PLUS
_ids = itertools.count()


class VariableWatch:
    """Samples the ``runway*`` Variables from the metadata DB in a thread while a DAG runs.

    With ``release`` ("resume" or "fail") the simulator, paused by the test, is released once the
    record is stored (below 3.3) or the Runway task exists (3.3): the task cannot finish before the
    record has been seen, so the check never passes by being too slow to look.
    """

    def __init__(self, sim: Any, release: str | None = None, deadline: float = 30.0) -> None:
        self.sim = sim
        self.release = release
        self.deadline = deadline
        self.seen: dict[str, str] = {}
        self.released_at_deadline = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ready(self) -> bool:
        return bool(self.seen) if USES_VARIABLE else bool(self.sim.tasks())

    def _release(self) -> None:
        if self.release == "resume":
            self.sim.resume()
        elif self.release == "fail":
            for task in self.sim.tasks():
                self.sim.fail_task(task["task_id"], code=500, message="Internal error")

    def _run(self) -> None:
        started = time.monotonic()
        pending = self.release is not None
        while not self._stop.is_set():
            self.seen.update(runway_variables())
            if pending and (self._ready() or time.monotonic() - started > self.deadline):
                self.released_at_deadline = not self._ready()
                self._release()
                pending = False
            self._stop.wait(0.02)

    @contextmanager
    def running(self) -> Iterator[VariableWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)
            self.seen.update(runway_variables())


def new_dag(name: str) -> DAG:
    return DAG(f"{name}_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1))


def creations(sim: Any) -> int:
    return int(sum(sim.counters().get("tasks_created", {}).values()))


def assert_record_lifecycle(watch: VariableWatch, dag_run: Any, runway_task_id: str) -> None:
    """Below 3.3: exactly this task instance's record was stored, holding the Runway task id; 3.3: none."""
    assert not watch.released_at_deadline, "the record never showed up, so the simulator was released by timeout"
    if USES_VARIABLE:
        prefix = f"{VARIABLE_PREFIX}:{dag_run.dag_id}:{dag_run.run_id}:gen:-1:"
        assert list(watch.seen) == [next(key for key in watch.seen if key.startswith(prefix))]
        assert list(watch.seen.values()) == [runway_task_id]
    else:
        assert watch.seen == {}
    assert runway_variables() == {}  # every end of the task instance removes it


class SkipWhenDone(RunwayGenerateOperator):
    """Skips itself once its Runway task has finished (the record exists by then)."""

    def _finish(self, context: Any, task: Any) -> dict[str, Any]:
        raise AirflowSkipException(f"Runway task {task.task_id} done; this run does not need it")


DEFERRABLE = pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])


@DEFERRABLE
def test_success_removes_the_record(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    runway_conn.pause()
    with new_dag("record_success") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox in the snow", deferrable=deferrable, **FAST)
    with VariableWatch(runway_conn, release="resume").running() as watch:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    assert creations(runway_conn) == 1
    assert_record_lifecycle(watch, dr, xcom(dr, "gen", "runway_task_id"))


@DEFERRABLE
def test_final_failure_removes_the_record(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    runway_conn.pause()
    with new_dag("record_failure") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            prompt="x",
            deferrable=deferrable,
            retries=2,  # a remote failure is final anyway: a new task would cost credits again
            on_failure_callback=failures[0],
            **FAST,
        )
    with VariableWatch(runway_conn, release="fail").running() as watch:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "fail"
    assert len(failures[1]) == 1 and "failed (fail code 500)" in failures[1][0]
    assert creations(runway_conn) == 1
    assert_record_lifecycle(watch, dr, task_id)


@DEFERRABLE
def test_timeout_without_retries_removes_the_record(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    runway_conn.pause()  # the Runway task never finishes
    with new_dag("record_timeout") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            prompt="x",
            deferrable=deferrable,
            timeout=0.6,
            retries=0,
            on_failure_callback=failures[0],
            **FAST,
        )
    with VariableWatch(runway_conn).running() as watch:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    assert len(failures[1]) == 1 and failures[1][0].startswith("RunwayTaskTimeoutError")
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "generating"
    assert creations(runway_conn) == 1
    assert_record_lifecycle(watch, dr, task_id)


@DEFERRABLE
def test_skip_removes_the_record(deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    runway_conn.pause()
    with new_dag("record_skip") as dag:
        SkipWhenDone(task_id="gen", prompt="x", deferrable=deferrable, retries=2, **FAST)
    with VariableWatch(runway_conn, release="resume").running() as watch:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("skipped", 1)}
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "success"
    assert creations(runway_conn) == 1
    assert_record_lifecycle(watch, dr, task_id)


@pytest.mark.parametrize(
    "deferrable",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
                reason="Airflow 3.0 keeps next_method on retry and its dag.test() drops the defer kwargs the "
                "operator uses to notice, so the retry is resumed with the first try's timeout event",
            ),
        ),
    ],
    ids=["sync", "deferrable"],
)
def test_retry_after_timeout_attaches_to_the_same_task(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    """The first try times out with the Runway task still running; the retry attaches to it."""
    runway_conn.pause()

    def release(context: Any) -> None:  # on_retry_callback: between the two tries
        SimulatorClient(runway_conn.url).resume()

    with new_dag("record_retry") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            prompt="x",
            deferrable=deferrable,
            timeout=0.6,
            retries=1,
            retry_delay=timedelta(0),
            on_retry_callback=release,
            **FAST,
        )
    with VariableWatch(runway_conn).running() as watch:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 2)}
    assert creations(runway_conn) == 1  # the retry paid nothing
    (only_task,) = runway_conn.tasks()
    assert only_task["state"] == "success"
    assert xcom(dr, "gen", "task_id") == only_task["task_id"]
    assert_record_lifecycle(watch, dr, only_task["task_id"])
