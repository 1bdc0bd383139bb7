"""Publish the videos ``example_runway_assets_batch`` stored: a DAG scheduled on the ``runway_videos`` asset.

It runs when the batch's generations emit asset (Airflow 2: dataset) events, and reads each triggering event's
``extra``: the Runway task id, the stored path and size, the duration and quality. Here it only lists them;
a real pipeline would copy them to a CDN or a CMS.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset, task

OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-videos/")
#: The same asset ``example_runway_assets_batch`` names in its outlets.
RUNWAY_VIDEOS = Asset(f"{OUTPUT_DIR}published")


def triggering_events(context: Any) -> list[Any]:
    """The asset events that triggered this run, on Airflow 3 (assets) and 2 (datasets)."""
    events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
    return [event for per_asset in events.values() for event in per_asset]


with DAG(
    dag_id="example_runway_publish",
    schedule=[RUNWAY_VIDEOS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runway", "assets"],
) as dag:

    @task
    def list_new_videos(**context: Any) -> list[dict[str, Any]]:
        """One line per new video, from the extra of the events that triggered the run."""
        videos = []
        for event in triggering_events(context):
            extra = dict(event.extra or {})
            if "runway_task_id" not in extra:
                continue  # an event from elsewhere on the same asset
            videos.append(
                {
                    key: extra.get(key)
                    for key in ("runway_task_id", "video_path", "video_size", "duration", "quality", "credits")
                }
            )
            print(f"new video {extra['runway_task_id']}: {extra.get('video_path')} ({extra.get('video_size')} bytes)")
        return videos

    list_new_videos()
