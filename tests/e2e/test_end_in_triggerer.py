"""A task that ends in the triggerer leaves what a task resumed on a worker leaves, on real Airflow processes.

``dag.test`` runs triggers in-line and resumes the task with the event's payload on every Airflow version, so
it never exercises a task-end event: this test runs the real scheduler and triggerer (``conftest.airflow_stack``)
with two deferrable generations of the same DAG run, one allowed to end in the triggerer and one not, and
compares their states and XComs key by key.
"""

from __future__ import annotations

import json
import textwrap
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_runway.triggers.task_end import task_end_supported

from .conftest import AirflowStack, ProcessRegistry, airflow_stack, start_runway_sim, wait_until

API_KEY = "sk-kie-E2E-END-IN-TRIGGERER-0123456789"
DAG_ID = "runway_end_in_triggerer"
DAG_FILE = "runway_end_in_triggerer.py"
RUN_ID = "end_in_triggerer_run"
ENDED_MESSAGE = "ending the task in the triggerer"

DAG_SOURCE = textwrap.dedent(
    f"""
    from __future__ import annotations

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_runway.operators.runway import RunwayGenerateOperator

    with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
        for name, end_in_triggerer in (("ended", True), ("resumed", False)):
            RunwayGenerateOperator(
                task_id=name,
                prompt="a lighthouse at dusk",
                duration=5,
                quality="720p",
                aspect_ratio="16:9",
                deferrable=True,
                poll_interval=0.5,
                end_in_triggerer=end_in_triggerer,
                retries=0,
            )
    """
)


def xcoms(stack: AirflowStack, task_id: str) -> dict[str, Any]:
    base = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(RUN_ID, safe='')}/taskInstances/{task_id}/xcomEntries"
    keys = [entry["key"] for entry in stack.get(f"{base}?limit=100")["xcom_entries"]]
    values = {}
    for key in keys:
        value = stack.get(f"{base}/{urllib.parse.quote(key, safe='')}?deserialize=true&stringify=false")["value"]
        values[key] = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
    return values


def test_a_task_ended_in_the_triggerer_leaves_the_same_state_and_xcoms(
    process_registry: ProcessRegistry, e2e_tmp: Path
) -> None:
    assert task_end_supported()
    sim_process = start_runway_sim(
        process_registry, e2e_tmp, ["--wait-seconds", "0.5", "--queueing-seconds", "0.5", "--generating-seconds", "2"]
    )
    sim = sim_process.client()
    dags = e2e_tmp / "dags"
    dags.mkdir()
    (dags / DAG_FILE).write_text(DAG_SOURCE)
    connection = {"conn_type": "runway", "host": sim_process.url, "password": API_KEY}
    stack = airflow_stack(
        process_registry,
        home=e2e_tmp / "airflow",
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            # Airflow 2's REST API returns XCom values as stored only with this on.
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
        },
    )
    stack.start()
    stack.wait_for_dag(DAG_ID, DAG_FILE, timeout=120)
    stack.unpause(DAG_ID)
    stack.trigger(DAG_ID, RUN_ID, datetime.now(timezone.utc).replace(microsecond=0), {})

    def finished() -> str | None:
        state = stack.dag_run(DAG_ID, RUN_ID)["state"]
        return state if state in ("success", "failed") else None

    assert wait_until(finished, 240, "the DAG run to finish") == "success"
    states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in stack.task_instances(DAG_ID, RUN_ID)}
    assert states == {"ended": ("success", 1), "resumed": ("success", 1)}

    ended, resumed = xcoms(stack, "ended"), xcoms(stack, "resumed")
    assert set(ended) == set(resumed)  # every key: return_value, each result key, the task id and result URL
    assert set(ended["return_value"]) == set(resumed["return_value"])
    for values in (ended, resumed):
        result = values["return_value"]
        assert result["state"] == "succeeded" and result["video_url"]
        assert {key: values[key] for key in result if key in values} == {
            key: value for key, value in result.items() if key in values
        }
        assert values["runway_task_id"] == result["task_id"]
        assert values["runway_result_url"] == result["video_url"]
    assert ended["return_value"]["task_id"] != resumed["return_value"]["task_id"]

    # The first task really ended in the triggerer, the second really resumed on a worker.
    logs = "\n".join(
        path.read_text(errors="replace")
        for path in (e2e_tmp / "airflow").rglob("*")
        if path.is_file() and "log" in path.name
    )
    logs += "\n".join(process.read_log() for process in process_registry.processes)
    ended_line = f"Runway task {ended['return_value']['task_id']} succeeded: {ENDED_MESSAGE}"
    resumed_line = f"Runway task {resumed['return_value']['task_id']} succeeded: {ENDED_MESSAGE}"
    assert ended_line in logs
    assert resumed_line not in logs

    # No resume record is left behind (below 3.3 a Variable; the trigger deleted it before ending the task).
    variables = [v["key"] for v in stack.get("/variables?limit=100")["variables"]]
    assert [key for key in variables if key.startswith("runway_provider_resume")] == []

    counters = sim.counters()
    assert counters["requests"]["generate"] == 2  # one creation per task: never paying twice
    assert counters["tasks_by_state"] == {"success": 2}
