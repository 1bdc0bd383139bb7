"""The production-topology suite's batch: independent deferrable Runway generations, one of them downloaded.

Independent tasks (no mapping, no upstream) so that the Celery worker picks them up as fast as it can
and they defer one after another, spreading their triggers over both triggerers. The suite sets
``RUNWAY_TOPOLOGY_TASKS``, ``RUNWAY_POLL_INTERVAL`` and ``RUNWAY_OUTPUT_DIR``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

TASK_COUNT = int(os.environ.get("RUNWAY_TOPOLOGY_TASKS", "20"))
POLL_INTERVAL = float(os.environ.get("RUNWAY_POLL_INTERVAL", "1"))
OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-topology/")
#: The one task that stores its video; every other task returns the result URL only.
DOWNLOADING_TASK = "generate_00"

with DAG(
    dag_id="runway_topology_batch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=TASK_COUNT,
    tags=["runway", "e2e"],
) as dag:
    for number in range(TASK_COUNT):
        task_id = f"generate_{number:02d}"
        RunwayGenerateOperator(
            task_id=task_id,
            prompt=f"Topology shot {number}: a lighthouse at dusk, slow pan, light rain",
            duration=5,
            quality="720p",
            aspect_ratio="16:9",
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            download_to=f"{OUTPUT_DIR}{{{{ ds_nodash }}}}/" if task_id == DOWNLOADING_TASK else None,
        )
