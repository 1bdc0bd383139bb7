"""The http provider route ``bench/makespan.py`` runs against the provider's DAGs (``makespan_provider.py``).

``makespan_http``: a mapped task group per prompt: ``HttpOperator`` creates the generation,
``HttpSensor`` (``mode="poke"``) reads its record until it ends, holding a worker slot. The pool cannot
hold a generation between the two tasks: a slot freed by a create may go to the next create before the
scheduler has made that create's sensor runnable, and the account then refuses the create (over its 10
concurrent generations). The create retries every poll interval, as a user of this route would have it
do; the benchmark counts the refused creates.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task_group
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

POOL = os.environ.get("MAKESPAN_POOL", "runway_makespan")
VIDEOS = int(os.environ.get("MAKESPAN_VIDEOS", "30"))
POLL_INTERVAL = float(os.environ.get("MAKESPAN_POLL_INTERVAL", "5"))
PROMPTS = [f"Makespan shot {n}: a paper boat on a still pond, slow dolly in" for n in range(1, VIDEOS + 1)]
START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Sensors before creates: a freed pool slot goes to a waiting sensor, never to an extra generation.
SENSOR_PRIORITY = 100


def record_done(response: Any) -> bool:
    """True once the generation succeeded; a failed generation fails the sensor."""
    data = response.json().get("data") or {}
    state = data.get("state") or data.get("status")
    if state == "fail":
        raise RuntimeError(f"generation failed: {data.get('failMsg') or data.get('failCode')}")
    return bool(state == "success")


def created_task_id(response: Any) -> str:
    """The new task's id; a refused create (e.g. over the account's concurrency) fails the task."""
    body = response.json()
    if body.get("code") != 200 or not body.get("data"):
        raise RuntimeError(f"create refused: {body.get('code')} {body.get('msg')}")
    return str(body["data"]["taskId"])


with DAG(dag_id="makespan_http", schedule=None, start_date=START, catchup=False, max_active_runs=1) as http_dag:

    @task_group(group_id="video")
    def video(body: str) -> None:
        create = HttpOperator(
            task_id="create",
            http_conn_id="runway_http",
            endpoint="/api/v1/runway/generate",
            method="POST",
            data=body,
            headers={"Content-Type": "application/json"},
            response_filter=created_task_id,
            pool=POOL,
            # Absolute: the default rule would add the sensor's weight to the create's.
            priority_weight=1,
            weight_rule="absolute",
            retries=20,
            retry_delay=timedelta(seconds=POLL_INTERVAL),
        )
        HttpSensor(
            task_id="wait",
            http_conn_id="runway_http",
            endpoint="/api/v1/runway/record-detail",
            request_params={"taskId": create.output},
            response_check=record_done,
            poke_interval=POLL_INTERVAL,
            mode="poke",
            pool=POOL,
            priority_weight=SENSOR_PRIORITY,
            weight_rule="absolute",
        )

    video.expand(
        body=[json.dumps({"prompt": p, "duration": 5, "quality": "720p", "aspectRatio": "16:9"}) for p in PROMPTS]
    )
