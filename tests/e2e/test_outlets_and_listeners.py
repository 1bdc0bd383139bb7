"""Outlets and listeners see deferrable Runway tasks end, on real Airflow processes (issue 21).

A task that ends in the triggerer skips what Airflow does at the end of a worker run: asset (Dataset)
events for its ``outlets`` and ``on_task_instance_success`` for listeners. This test runs the installed
Airflow's real processes (``conftest.airflow_stack``) against ``runway-sim`` in two phases on one stack:

1. **No listener plugin.** ``runway_outlets_producer`` (two deferrable generations with an asset in their
   ``outlets``, no ``download_to``) and ``runway_without_outlets`` (the same generations, no outlets) run at
   once. Each producer task emits one asset event and the DAG scheduled on the asset runs and succeeds;
   each task without outlets still ends in the triggerer: the trigger logged that it ended the task, and
   Airflow never queued the task instance again after its generation had finished (a resume on a worker
   is queued anew, so its ``queued_when`` would be later than the simulator's ``completes_at``).
2. **A listener plugin** in the plugins folder (the scheduler restarted so its workers load it):
   ``runway_without_outlets`` runs again, and the listener sees ``on_task_instance_success`` once for each
   task. No outlets there, so only the registered listener can have sent the tasks back to a worker.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

from .conftest import AirflowStack, ProcessRegistry, airflow_stack, start_runway_sim, wait_until

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "outlets_and_listeners"
DAG_FILE = "runway_outlets_and_listeners.py"
PLUGIN_FILE = "runway_success_listener.py"
PRODUCER = "runway_outlets_producer"
CONSUMER = "runway_outlets_consumer"
WITHOUT_OUTLETS = "runway_without_outlets"
TASK_IDS = ("dawn", "dusk")
API_KEY = "-".join(["sk", "e2e", "OUTLETS", "7c41a9"])
#: What the trigger logs when it ends its task itself (``triggers/runway.py``).
ENDED_MESSAGE = "ending the task in the triggerer"
RUN_TIMEOUT = 240.0

T = TypeVar("T")


def polled(predicate: Callable[[], T]) -> Callable[[], T | None]:
    """``predicate`` for :func:`wait_until`, a REST request that timed out counting as "not yet".

    On a loaded machine one request to the api-server (a single worker) can take longer than its 30 s
    timeout; the next poll asks again.
    """

    def poll() -> T | None:
        try:
            return predicate()
        except (TimeoutError, urllib.error.URLError):
            return None

    return poll


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines the listener plugin appended; none if the file was never written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def per_task(records: list[dict[str, Any]], dag_id: str, run_id: str, **match: str) -> dict[str, int]:
    """How many records each task of one DAG run has (every task id listed, 0 when it has none)."""
    counts = Counter(
        r["task_id"]
        for r in records
        if r["dag_id"] == dag_id and r["run_id"] == run_id and all(r.get(k) == v for k, v in match.items())
    )
    return {task_id: counts[task_id] for task_id in TASK_IDS}


def wait_for_run(stack: AirflowStack, dag_id: str, run_id: str) -> str:
    def finished() -> str | None:
        state = stack.dag_run(dag_id, run_id)["state"]
        return state if state in ("success", "failed") else None

    return str(
        wait_until(polled(finished), RUN_TIMEOUT, f"{dag_id} run {run_id} to finish", interval=stack.observe_interval)
    )


def task_states(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(dag_id, run_id)}


def asset_events_per_task(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, int]:
    """Asset (Dataset, on Airflow 2) events the run's tasks emitted, counted by source task."""
    query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id, "limit": 100})
    path, key = (
        (f"/assets/events?{query}", "asset_events")
        if AIRFLOW_V_3_0_PLUS
        else (f"/datasets/events?{query}", "dataset_events")
    )

    def events() -> tuple[list[dict[str, Any]]] | None:  # a tuple: no events is an answer too
        try:
            return (list(stack.get(path)[key]),)
        except AssertionError as error:
            # Airflow 3.3.2 answers 500 while a run the events created has no start_date yet (its response
            # model requires one); the scheduler starts that run within a loop or two.
            if "HTTP 500" in str(error):
                return None
            raise

    answer = wait_until(polled(events), 60, f"the asset events of {dag_id}")
    counts = Counter(event["source_task_id"] for event in answer[0])
    return {task_id: counts[task_id] for task_id in TASK_IDS}


def consumer_run_states(stack: AirflowStack, expect_runs: bool) -> list[str]:
    """States of the runs the asset scheduled, once they finished (waited for only if events were emitted)."""

    def runs() -> list[str]:
        return [run["state"] for run in stack.get(f"/dags/{CONSUMER}/dagRuns?limit=100")["dag_runs"]]

    def finished() -> list[str] | None:
        states = runs()
        return states if states and all(state in ("success", "failed") for state in states) else None

    return sorted(wait_until(polled(finished), 90, f"a {CONSUMER} run to finish")) if expect_runs else runs()


def runway_task_id(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str:
    run = urllib.parse.quote(run_id, safe="")
    path = f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/runway_task_id"
    return str(stack.get(f"{path}?deserialize=true&stringify=false")["value"])


def ended_in_triggerer_per_task(
    stack: AirflowStack, registry: ProcessRegistry, home: Path, dag_id: str, run_id: str
) -> dict[str, bool]:
    """Whether the trigger logged that it ended each task itself (in a task log or a process log)."""
    logs = "\n".join(
        path.read_text(errors="replace") for path in home.rglob("*") if path.is_file() and "log" in path.name
    )
    logs += "\n".join(process.read_log() for process in registry.processes)
    return {
        task_id: f"Runway task {runway_task_id(stack, dag_id, run_id, task_id)} succeeded: {ENDED_MESSAGE}" in logs
        for task_id in TASK_IDS
    }


def queued_after_the_generation(
    stack: AirflowStack, sim_tasks: Mapping[str, Mapping[str, Any]], dag_id: str, run_id: str
) -> dict[str, bool]:
    """Whether Airflow queued each task instance again once its generation had finished: back to a worker.

    A deferred task that resumes on a worker goes through ``scheduled`` and ``queued`` again, which moves its
    ``queued_when``; a task ended by its trigger keeps the time it was first queued, before it created the
    generation.
    """
    back: dict[str, bool] = {}
    for ti in stack.task_instances(dag_id, run_id):
        generation = sim_tasks[runway_task_id(stack, dag_id, run_id, ti["task_id"])]
        queued = datetime.fromisoformat(ti["queued_when"].replace("Z", "+00:00")).timestamp()
        assert queued < generation["created_at"] or queued > generation["completes_at"], (ti, generation)
        back[ti["task_id"]] = queued > generation["completes_at"]
    return back


def release_once_handed_over(stack: AirflowStack, sim: Any, runs: list[tuple[str, str]]) -> None:
    """Let the held generations finish once every task of ``runs`` is deferred and handed to the triggerer.

    Airflow 3.3.2 fails a task whose trigger fires before the scheduler processed the worker's defer-exit
    event (apache/airflow#67287, #72716), and a task with outlets or listeners resumes on a worker: so wait
    until every worker is idle and the scheduler logged each task's executor event.
    """

    def handed_over() -> bool:
        stack.assert_alive()
        states = [ti["state"] for dag_id, run_id in runs for ti in stack.task_instances(dag_id, run_id)]
        scheduler_log = stack.components["scheduler"].read_log()
        return (
            states == ["deferred"] * len(TASK_IDS) * len(runs)
            and not stack.busy_workers() + stack.task_processes()
            and all(
                f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}," in scheduler_log
                for dag_id, run_id in runs
                for task_id in TASK_IDS
            )
        )

    wait_until(
        polled(handed_over), RUN_TIMEOUT, f"{runs} to be deferred with every worker idle", stack.observe_interval
    )
    sim.resume()


def restart_scheduler(stack: AirflowStack) -> None:
    """Stop the scheduler and start it again: its executor's task processes then load the plugins folder anew."""
    stack.components["scheduler"].stop()
    stack.start_component("scheduler")
    stack.wait_healthy(timeout=120)


def start_stack(registry: ProcessRegistry, tmp: Path, sim_url: str, records: Path, plugins: Path) -> AirflowStack:
    """Airflow on the test's DAGs and (empty) plugins folder, every DAG parsed and unpaused."""
    dags = tmp / "dags"
    dags.mkdir()
    shutil.copy(FIXTURES / DAG_FILE, dags / DAG_FILE)
    connection = {"conn_type": "runway", "host": sim_url, "password": API_KEY}
    stack = airflow_stack(
        registry,
        home=tmp / "airflow",
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            # The scheduler creates asset-triggered runs only with its job schedule on; no DAG here has a timetable.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            # Airflow 2's REST API returns XCom values as stored only with this on.
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
            # Airflow 3's workers give the execution API 5 s per request by default; a loaded machine can take longer.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "RUNWAY_E2E_RECORDS": str(records),
        },
    )
    stack.start()
    for dag_id in (PRODUCER, CONSUMER, WITHOUT_OUTLETS):
        stack.wait_for_dag(dag_id, DAG_FILE, timeout=120)
        stack.unpause(dag_id)
    return stack


def test_outlets_and_listeners_see_each_deferrable_task_end(process_registry: ProcessRegistry, e2e_tmp: Path) -> None:
    started = time.monotonic()
    sim_process = start_runway_sim(
        process_registry, e2e_tmp, ["--wait-seconds", "0.5", "--queueing-seconds", "0.5", "--generating-seconds", "1"]
    )
    sim = sim_process.client()
    sim.pause()  # every generation is held in "generating" until its task was handed to the triggerer
    records, plugins = e2e_tmp / "records", e2e_tmp / "plugins"
    records.mkdir()
    plugins.mkdir()  # empty until phase 2
    home = e2e_tmp / "airflow"
    stack = start_stack(process_registry, e2e_tmp, sim_process.url, records, plugins)
    timings = {"stack up": time.monotonic() - started}

    # Phase 1: no listener registered.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stack.trigger(PRODUCER, "outlets", now, {})
    stack.trigger(WITHOUT_OUTLETS, "plain", now, {})
    release_once_handed_over(stack, sim, [(PRODUCER, "outlets"), (WITHOUT_OUTLETS, "plain")])
    run_states = {
        dag_id: wait_for_run(stack, dag_id, run_id)
        for dag_id, run_id in ((PRODUCER, "outlets"), (WITHOUT_OUTLETS, "plain"))
    }
    events = asset_events_per_task(stack, PRODUCER, "outlets")
    consumer_states = consumer_run_states(stack, expect_runs=any(events.values()))
    timings["phase 1"] = time.monotonic() - started - sum(timings.values())

    # Phase 2: the listener plugin registered.
    shutil.copy(FIXTURES / PLUGIN_FILE, plugins / PLUGIN_FILE)
    restart_scheduler(stack)
    sim.pause()
    stack.trigger(WITHOUT_OUTLETS, "listened", now + timedelta(seconds=1), {})
    release_once_handed_over(stack, sim, [(WITHOUT_OUTLETS, "listened")])
    run_states["listened"] = wait_for_run(stack, WITHOUT_OUTLETS, "listened")
    timings["phase 2"] = time.monotonic() - started - sum(timings.values())

    listened = read_records(records / "listener.jsonl")
    sim_tasks = {task["task_id"]: task for task in sim.tasks()}
    observed = {
        "run states": run_states,
        "producer task states": task_states(stack, PRODUCER, "outlets"),
        "asset events per producer task": events,
        "asset-scheduled consumer runs": consumer_states,
        "producer tasks back to a worker": queued_after_the_generation(stack, sim_tasks, PRODUCER, "outlets"),
        "tasks without outlets back to a worker": queued_after_the_generation(
            stack, sim_tasks, WITHOUT_OUTLETS, "plain"
        ),
        "tasks without outlets ended by the trigger": ended_in_triggerer_per_task(
            stack, process_registry, home, WITHOUT_OUTLETS, "plain"
        ),
        "listened tasks back to a worker": queued_after_the_generation(stack, sim_tasks, WITHOUT_OUTLETS, "listened"),
        "listener running calls": per_task(listened, WITHOUT_OUTLETS, "listened", hook="running"),
        "listener success calls": per_task(listened, WITHOUT_OUTLETS, "listened", hook="success"),
    }
    print(f"\nobserved: {json.dumps(observed, indent=1)}")
    print("timings: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()))
    one_each, twice_each = dict.fromkeys(TASK_IDS, 1), dict.fromkeys(TASK_IDS, 2)
    every_task, no_task = dict.fromkeys(TASK_IDS, True), dict.fromkeys(TASK_IDS, False)
    assert observed == {
        "run states": {PRODUCER: "success", WITHOUT_OUTLETS: "success", "listened": "success"},
        "producer task states": dict.fromkeys(TASK_IDS, "success"),
        "asset events per producer task": one_each,
        # Two events close together may be consumed by one run or by two: each run must succeed.
        "asset-scheduled consumer runs": ["success"] * max(len(consumer_states), 1),
        # Outlets are emitted at a worker's end of the task, so the task went back to a worker.
        "producer tasks back to a worker": every_task,
        "tasks without outlets back to a worker": no_task,
        "tasks without outlets ended by the trigger": every_task,
        "listened tasks back to a worker": every_task,
        # The listener was loaded from the first worker run on, and sees the resume and the success.
        "listener running calls": twice_each,
        "listener success calls": one_each,
    }
    counters = sim.counters()
    assert counters["requests"]["generate"] == 6  # one creation per task: nothing paid twice
    assert counters["tasks_by_state"] == {"success": 6}
