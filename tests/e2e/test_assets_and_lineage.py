"""The assets example pair on real Airflow processes: the asset-scheduled DAG reads which videos arrived.

``example_runway_assets_batch`` (two deferrable generations, stored with ``download_to``, the ``runway_videos``
asset in their ``outlets``) and ``example_runway_publish`` (scheduled on that asset) run unchanged on the
installed Airflow's scheduler, triggerer and API server (``conftest.airflow_stack``) against ``runway-sim``.
Each generation emits one asset (Airflow 2: dataset) event; each publish run it schedules lists exactly the
Runway task ids and stored paths of the events that triggered it (read from their ``extra``), and those are
the files on disk.

Needs a task with outlets to end on a worker (``execute_complete``), not in the triggerer, where Airflow emits
no asset event (issue 21).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

from .conftest import AirflowStack, ProcessRegistry, airflow_stack, start_runway_sim, wait_until

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parents[2] / "dags"
BATCH, PUBLISH = "example_runway_assets_batch", "example_runway_publish"
API_KEY = "-".join(["sk", "e2e", "ASSETS", "3f82d0"])
PROMPTS = ["a paper boat in the rain", "a balloon over fields"]
RUN_TIMEOUT = 240.0
#: What ``example_runway_publish`` lists of each event's extra.
LISTED_KEYS = ("runway_task_id", "video_path", "video_size", "duration", "quality", "credits")


def patiently(observe: Callable[[], Any]) -> Callable[[], Any]:
    """``observe``, with an API answer slower than the client's 30 s timeout (a loaded machine) read as not yet."""

    def observed() -> Any:
        try:
            return observe()
        except TimeoutError:
            return None

    return observed


def finished_runs(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]] | None:
    runs = stack.get(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
    return runs if runs and all(run["state"] in ("success", "failed") for run in runs) else None


def xcom_value(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    run = urllib.parse.quote(run_id, safe="")
    path = f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/{key}"
    return stack.get(f"{path}?deserialize=true&stringify=false")["value"]


def upstream_events(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    """The asset (Airflow 2: dataset) events a publish run was triggered by."""
    run = urllib.parse.quote(run_id, safe="")
    kind, key = ("Asset", "asset_events") if AIRFLOW_V_3_0_PLUS else ("Dataset", "dataset_events")
    return list(stack.get(f"/dags/{PUBLISH}/dagRuns/{run}/upstream{kind}Events")[key])


def batch_events(stack: AirflowStack) -> list[dict[str, Any]]:
    """The asset (Airflow 2: dataset) events the batch's generations emitted."""
    query = urllib.parse.urlencode({"source_dag_id": BATCH, "source_run_id": "night", "limit": 100})
    path, key = ("/assets/events", "asset_events") if AIRFLOW_V_3_0_PLUS else ("/datasets/events", "dataset_events")
    return list(stack.get(f"{path}?{query}")[key])


def release_once_deferred(stack: AirflowStack, sim: Any, run_id: str) -> None:
    """Let the held generations finish once both are deferred, every worker is idle and the scheduler saw it.

    Airflow 3.3.2 fails a task whose trigger fires before the scheduler processed the worker's defer-exit
    event (apache/airflow#67287), so the simulator holds each generation until its task was handed over: an
    idle worker is not enough (a loaded scheduler may process the event seconds later), the scheduler's log
    line for each defer-exit is.
    """

    def handed_over() -> bool:
        stack.assert_alive()
        states = [ti["state"] for ti in stack.task_instances(BATCH, run_id) if ti["task_id"] == "generate"]
        scheduler_log = stack.components["scheduler"].read_log()
        return (
            states == ["deferred"] * len(PROMPTS)
            and not stack.busy_workers() + stack.task_processes()
            and all(
                f"TaskInstance Finished: dag_id={BATCH}, task_id=generate, run_id={run_id}, map_index={index},"
                in scheduler_log
                for index in range(len(PROMPTS))
            )
        )

    wait_until(patiently(handed_over), RUN_TIMEOUT, "both generations to be deferred with every worker idle", 0.5)
    sim.resume()


def test_publish_dag_reads_the_new_videos_from_the_asset_events(
    process_registry: ProcessRegistry, e2e_tmp: Path
) -> None:
    sim_process = start_runway_sim(
        process_registry, e2e_tmp, ["--wait-seconds", "0.5", "--queueing-seconds", "0.5", "--generating-seconds", "1"]
    )
    sim = sim_process.client()
    sim.pause()
    dags = e2e_tmp / "dags"
    dags.mkdir()
    for dag_id in (BATCH, PUBLISH):
        shutil.copy(DAGS / f"{dag_id}.py", dags / f"{dag_id}.py")
    videos = e2e_tmp / "videos"
    connection = {"conn_type": "runway", "host": sim_process.url, "password": API_KEY}
    stack = airflow_stack(
        process_registry,
        home=e2e_tmp / "airflow",
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "RUNWAY_OUTPUT_DIR": f"file://{videos}/",
            "RUNWAY_POLL_INTERVAL": "0.5",
            # The scheduler creates asset-triggered runs only with its job schedule on.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
        },
    )
    stack.start()
    for dag_id in (BATCH, PUBLISH):
        stack.wait_for_dag(dag_id, f"{dag_id}.py", timeout=120)
        stack.unpause(dag_id)

    stack.trigger(BATCH, "night", datetime.now(timezone.utc).replace(microsecond=0), {"prompts": PROMPTS})
    release_once_deferred(stack, sim, "night")
    [batch_run] = wait_until(patiently(lambda: finished_runs(stack, BATCH)), RUN_TIMEOUT, f"{BATCH} to finish", 0.5)

    publish_runs = wait_until(patiently(lambda: finished_runs(stack, PUBLISH)), 120, f"a {PUBLISH} run to finish", 0.5)
    stored = {path.stem: path for path in videos.rglob("*.mp4")}
    # Airflow folds events that arrive while it creates a run into the next run, so a run may read one event
    # or both: each run must list exactly the videos of the events that triggered it.
    per_run = {
        run["dag_run_id"]: {
            "state": run["state"],
            "listed": sorted(
                json.dumps(video, sort_keys=True)
                for video in xcom_value(stack, PUBLISH, run["dag_run_id"], "list_new_videos") or []
            ),
            "from the events": sorted(
                json.dumps({key: event["extra"].get(key) for key in LISTED_KEYS}, sort_keys=True)
                for event in upstream_events(stack, run["dag_run_id"])
            ),
        }
        for run in publish_runs
    }
    published = [json.loads(video) for run in per_run.values() for video in run["listed"]]
    observed = {
        "batch run": batch_run["state"],
        "batch events": sorted(event["extra"]["runway_task_id"] for event in batch_events(stack)),
        "publish runs": sorted(run["state"] for run in per_run.values()),
        "runs listing their events' videos": sorted(
            run["listed"] == run["from the events"] for run in per_run.values()
        ),
        "published files": sorted(
            (video["video_path"], video["video_size"])
            == (f"file://{stored[video['runway_task_id']]}", stored[video["runway_task_id"]].stat().st_size)
            for video in published
            if video["runway_task_id"] in stored
        ),
        "summary": xcom_value(stack, BATCH, "night", "summary"),
    }
    print(f"\nobserved: {json.dumps(observed, indent=1)}\nper publish run: {json.dumps(per_run, indent=1)}")
    spent = sim.account(API_KEY)["credits_spent"]
    assert published, "no publish run listed a video"
    assert observed == {
        "batch run": "success",
        "batch events": sorted(stored),
        "publish runs": ["success"] * len(per_run),
        "runs listing their events' videos": [True] * len(per_run),
        "published files": [True] * len(published),
        "summary": {"generations": 2, "charged": 2, "credits": spent, "unknown": []},
    }
    assert len(stored) == 2 and spent == 120
    assert sim.counters()["requests"]["generate"] == 2  # one creation per video: nothing paid twice
