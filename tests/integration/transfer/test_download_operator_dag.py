"""RunwayDownloadOperator inside a real DAG run (``dag.test()``) against the simulator."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG, task
from airflow.utils.state import DagRunState, TaskInstanceState

from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.download import RunwayDownloadOperator

from .conftest import file_requests, finish_task, run_dag

pytestmark = pytest.mark.integration


def build_dag(
    dest: str, checks: list[dict[str, Any]], *, task_dict: dict[str, Any] | None = None, retries: int = 0
) -> DAG:
    with DAG(
        dag_id=f"test_runway_download_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
    ) as dag:

        @task(multiple_outputs=False)  # one XCom: Airflow 3.0 cannot store the None values of its keys
        def produce() -> dict[str, Any]:
            return task_dict or finish_task(RunwayHook())

        store = RunwayDownloadOperator(
            task_id="store",
            task=produce(),
            destination=dest + "{{ dag.dag_id }}/",
            retries=retries,
            retry_delay=timedelta(seconds=0),
        )

        @task
        def check(video_path: str, video_size: int, thumbnail_path: str | None) -> None:
            checks.append({"video_path": video_path, "video_size": video_size, "thumbnail_path": thumbnail_path})

        output: Any = store.output
        check(output["video_path"], output["video_size"], output["thumbnail_path"])
    return dag


def test_download_operator_in_a_dag_run(airflow_db: str, sim_hook: RunwayHook, runway_sim: Any, tmp_path: Path) -> None:
    checks: list[dict[str, Any]] = []
    dag = build_dag(f"file://{tmp_path}/", checks)
    run = run_dag(dag)
    assert run.state == DagRunState.SUCCESS
    [seen] = checks
    folder = tmp_path / dag.dag_id
    video = next(folder.glob("*.mp4"))
    assert seen == {
        "video_path": f"file://{video}",
        "video_size": video.stat().st_size,
        "thumbnail_path": f"file://{video.with_suffix('.png')}",
    }
    assert file_requests(runway_sim) == 2


def test_expired_result_fails_the_task_without_retry(airflow_db: str, sim_hook: RunwayHook, tmp_path: Path) -> None:
    expired = {**finish_task(sim_hook), "expired": True}
    dag = build_dag(f"file://{tmp_path}/", [], task_dict=expired, retries=2)
    run = run_dag(dag)
    assert run.state == DagRunState.FAILED
    store = next(ti for ti in run.get_task_instances() if ti.task_id == "store")
    assert (store.state, store.try_number) == (TaskInstanceState.FAILED, 1)
    assert not any(tmp_path.rglob("*.mp4"))
