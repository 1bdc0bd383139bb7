"""Video-to-video editing with Runway Aleph.

``RunwayAlephOperator`` sends a video (first 5 seconds, at most 10 MB) and an editing prompt; Aleph
tasks take longer than Gen-3 ones (2-15 minutes), so its default timeout is 60 minutes. To stay
self-contained, the DAG edits a clip it generates first (``XComArg(source, key="video_url")``); with your
own footage, pass its public https URL as ``video_url`` (templated, e.g. ``"{{ params.video }}"``).

Runs unchanged against the bundled simulator or the real API through the ``runway_default``
connection (see ``example_runway_text_to_video``). ``RUNWAY_POLL_INTERVAL`` sets the poll interval.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, XComArg, task

from airflow_provider_runway.operators.runway import RunwayAlephOperator, RunwayGenerateOperator

POLL_INTERVAL = float(os.environ.get("RUNWAY_POLL_INTERVAL", "5"))

with DAG(
    dag_id="example_runway_aleph",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runway"],
) as dag:
    source = RunwayGenerateOperator(
        task_id="make_source_clip",
        prompt="A quiet city street in daylight, parked cars, a cyclist passing",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    edit = RunwayAlephOperator(
        task_id="turn_to_night",
        prompt="Make it a rainy night with neon reflections on the wet street",
        video_url=XComArg(source, key="video_url"),
        aspect_ratio="21:9",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    @task
    def compare(before: Any, after: Any) -> None:
        """Print both versions side by side."""
        print(f"before: {before}\nafter:  {after}")

    compare(XComArg(source, key="video_url"), XComArg(edit, key="video_url"))
