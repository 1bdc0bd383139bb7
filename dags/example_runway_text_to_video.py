"""Text-to-video with Runway Gen-3: the smallest useful DAG.

``RunwayGenerateOperator`` creates the task, pushes its id to XCom (and to the "Runway Result"
link), waits without holding a worker slot (``deferrable=True``) and returns the result. Every key
of the result is its own XCom (``multiple_outputs``), so the downstream task reads
``XComArg(generate, key="video_url")`` directly.

A retry never pays twice: the Runway task id is stored before waiting, and a later try attaches to
that task unless it failed. A failed generation ends the task without retries (a new task costs
credits again); pass ``retry_remote_failures=True`` to opt in.

Runs unchanged against the bundled simulator or the real API; the ``runway_default`` connection
decides which, e.g. ``AIRFLOW_CONN_RUNWAY_DEFAULT='{"conn_type": "runway", "host":
"http://127.0.0.1:8089", "password": "any-key"}'`` with ``runway-sim --port 8089`` running.
``RUNWAY_POLL_INTERVAL`` (seconds, default 5) shortens the wait against the simulator.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, XComArg, task

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

with DAG(
    dag_id="example_runway_text_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"prompt": Param("A red fox trotting through fresh snow at golden hour, tracking shot", type="string")},
    tags=["example", "runway"],
) as dag:
    generate = RunwayGenerateOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=float(os.environ.get("RUNWAY_POLL_INTERVAL", "5")),
        timeout=pendulum.duration(minutes=30),
        retries=2,
    )

    @task
    def announce(task_id: Any, video_url: Any) -> str:
        """Print where the video is; KIE keeps it 14 days."""
        print(f"Runway task {task_id} finished: {video_url}")
        return str(video_url)

    announce(XComArg(generate, key="task_id"), XComArg(generate, key="video_url"))
