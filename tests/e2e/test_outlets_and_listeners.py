"""Outlets and listeners see deferrable Runway tasks end, on real Airflow processes (issue 21).

A task that ends in the triggerer skips what Airflow does at the end of a worker run: asset (Dataset)
events for its ``outlets`` and ``on_task_instance_success`` for listeners. This test runs the installed
Airflow's real processes (``conftest.airflow_stack``) against ``runway-sim`` in two phases on one stack:

1. **No listener plugin.** ``runway_outlets_producer`` (two deferrable generations with an asset in their
   ``outlets``, no ``download_to``) and ``runway_without_outlets`` (the same generations, no outlets) run at
   once. Each producer task emits one asset event and the DAG scheduled on the asset runs and succeeds;
   each task without outlets still ends in the triggerer: it ran on a worker once (``on_execute_callback``
   records every worker run, a resume after deferral included) and the trigger logged that it ended the task.
2. **A listener plugin** in the plugins folder (the scheduler restarted so its workers load it):
   ``runway_without_outlets`` runs again, and the listener sees ``on_task_instance_success`` once for each
   task. No outlets there, so only the registered listener can have sent the tasks back to a worker.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a DAG callback or the listener plugin appended; none if the file was never written."""
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

    return str(wait_until(finished, RUN_TIMEOUT, f"{dag_id} run {run_id} to finish", interval=stack.observe_interval))


def task_states(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(dag_id, run_id)}


def asset_events_per_task(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, int]:
    """Asset (Dataset, on Airflow 2) events the run's tasks emitted, counted by source task."""
    query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id, "limit": 100})
    if AIRFLOW_V_3_0_PLUS:
        events = stack.get(f"/assets/events?{query}")["asset_events"]
    else:
        events = stack.get(f"/datasets/events?{query}")["dataset_events"]
    counts = Counter(event["source_task_id"] for event in events)
    return {task_id: counts[task_id] for task_id in TASK_IDS}


def consumer_run_states(stack: AirflowStack, expect_runs: bool) -> list[str]:
    """States of the runs the asset scheduled, once they finished (waited for only if events were emitted)."""

    def runs() -> list[str]:
        return [run["state"] for run in stack.get(f"/dags/{CONSUMER}/dagRuns?limit=100")["dag_runs"]]

    def finished() -> list[str] | None:
        states = runs()
        return states if states and all(state in ("success", "failed") for state in states) else None

    return sorted(wait_until(finished, 90, f"a {CONSUMER} run to finish")) if expect_runs else runs()


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


def restart_scheduler(stack: AirflowStack) -> None:
    """Stop the scheduler and start it again: its executor's task processes then load the plugins folder anew."""
    stack.components["scheduler"].stop()
    stack.start_component("scheduler")
    stack.wait_healthy(timeout=120)


def test_outlets_and_listeners_see_each_deferrable_task_end(process_registry: ProcessRegistry, e2e_tmp: Path) -> None:
    started = time.monotonic()
    sim_process = start_runway_sim(
        process_registry, e2e_tmp, ["--wait-seconds", "0.5", "--queueing-seconds", "0.5", "--generating-seconds", "2"]
    )
    records = e2e_tmp / "records"
    records.mkdir()
    dags = e2e_tmp / "dags"
    dags.mkdir()
    shutil.copy(FIXTURES / DAG_FILE, dags / DAG_FILE)
    home = e2e_tmp / "airflow"
    plugins = e2e_tmp / "plugins"
    plugins.mkdir()  # empty until phase 2
    connection = {"conn_type": "runway", "host": sim_process.url, "password": API_KEY}
    stack = airflow_stack(
        process_registry,
        home=home,
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            # The scheduler creates asset-triggered runs only with its job schedule on; no DAG here has a timetable.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            # Airflow 2's REST API returns XCom values as stored only with this on.
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
            "RUNWAY_E2E_RECORDS": str(records),
        },
    )
    stack.start()
    for dag_id in (PRODUCER, CONSUMER, WITHOUT_OUTLETS):
        stack.wait_for_dag(dag_id, DAG_FILE, timeout=120)
        stack.unpause(dag_id)
    timings = {"stack up": time.monotonic() - started}

    # Phase 1: no listener registered.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stack.trigger(PRODUCER, "outlets", now, {})
    stack.trigger(WITHOUT_OUTLETS, "plain", now, {})
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
    stack.trigger(WITHOUT_OUTLETS, "listened", now + timedelta(seconds=1), {})
    run_states["listened"] = wait_for_run(stack, WITHOUT_OUTLETS, "listened")
    timings["phase 2"] = time.monotonic() - started - sum(timings.values())

    worker_runs = read_records(records / "worker_runs.jsonl")
    listened = read_records(records / "listener.jsonl")
    observed = {
        "run states": run_states,
        "producer task states": task_states(stack, PRODUCER, "outlets"),
        "asset events per producer task": events,
        "asset-scheduled consumer runs": consumer_states,
        "worker runs per producer task": per_task(worker_runs, PRODUCER, "outlets"),
        "worker runs per task without outlets": per_task(worker_runs, WITHOUT_OUTLETS, "plain"),
        "ended in the triggerer without outlets": ended_in_triggerer_per_task(
            stack, process_registry, home, WITHOUT_OUTLETS, "plain"
        ),
        "listener running calls": per_task(listened, WITHOUT_OUTLETS, "listened", hook="running"),
        "listener success calls": per_task(listened, WITHOUT_OUTLETS, "listened", hook="success"),
    }
    print(f"\nobserved: {json.dumps(observed, indent=1)}")
    print("timings: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()))
    one_each, twice_each = dict.fromkeys(TASK_IDS, 1), dict.fromkeys(TASK_IDS, 2)
    assert observed == {
        "run states": {PRODUCER: "success", WITHOUT_OUTLETS: "success", "listened": "success"},
        "producer task states": dict.fromkeys(TASK_IDS, "success"),
        "asset events per producer task": one_each,
        # Two events close together may be consumed by one run or by two: each run must succeed.
        "asset-scheduled consumer runs": ["success"] * max(len(consumer_states), 1),
        # Outlets are emitted at a worker's end of the task, so the task went back to a worker.
        "worker runs per producer task": twice_each,
        "worker runs per task without outlets": one_each,
        "ended in the triggerer without outlets": dict.fromkeys(TASK_IDS, True),
        # The listener was loaded from the first worker run on, and sees the resume and the success.
        "listener running calls": twice_each,
        "listener success calls": one_each,
    }
    counters = sim_process.client().counters()
    assert counters["requests"]["generate"] == 6  # one creation per task: nothing paid twice
    assert counters["tasks_by_state"] == {"success": 6}
