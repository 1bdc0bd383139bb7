"""Rendered mistakes in a real DAG run (``dag.test()``): failed at once, not retried, nothing sent."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_runway.operators.runway import RunwayAlephOperator, RunwayExtendOperator, RunwayGenerateOperator
from airflow_provider_runway.simulator import SimulatorThread
from tests.integration.airflow_compat import serialize_dag

# task id -> parameter its rendered value breaks
BROKEN: dict[str, str] = {
    "empty_prompt": "prompt",
    "odd_duration": "duration",
    "no_video": "video_url",
    "spaced_source": "source_task_id",
    "wide_aspect": "aspect_ratio",
}


@pytest.mark.integration
def test_bad_rendered_values_fail_without_retries_or_requests(airflow_db: str, sim: SimulatorThread) -> None:
    messages: dict[str, str] = {}

    def record(context: Any) -> None:
        messages[context["ti"].task_id] = str(context["exception"])

    with DAG(
        "runway_bad_input_rendered",
        schedule=None,
        start_date=datetime.datetime(2024, 1, 1),
        params={"prompt": "", "duration": 7, "video": "", "source": "two words", "aspect": "wide"},
        default_args={"retries": 2, "on_failure_callback": record},
    ) as dag:
        RunwayGenerateOperator(task_id="empty_prompt", prompt="{{ params.prompt }}")
        RunwayGenerateOperator(task_id="odd_duration", prompt="a cat", duration="{{ params.duration }}")
        RunwayAlephOperator(task_id="no_video", prompt="snow", video_url="{{ params.video }}")
        RunwayExtendOperator(task_id="spaced_source", source_task_id="{{ params.source }}", prompt="more")
        RunwayGenerateOperator(task_id="wide_aspect", prompt="a cat", aspect_ratio="{{ params.aspect }}")
    serialize_dag(dag)
    dag_run = dag.test()

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id)
        tries = {ti.task_id: (str(ti.state), ti.try_number) for ti in session.scalars(query)}
    assert tries == {task_id: ("failed", 1) for task_id in BROKEN}  # AirflowFailException: no retry
    for task_id, param in BROKEN.items():
        assert f"Invalid {param}=" in messages[task_id]
        assert "no Runway task was created" in messages[task_id]
    counters = sim.counters()
    assert counters["requests_total"] == 0
    assert counters["tasks_total"] == 0
