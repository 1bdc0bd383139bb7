"""Text-to-video, then keep the result: the README's main job.

One ``RunwayGenerateOperator`` creates a Gen-3 text-to-video task, waits for it without holding a
worker slot (``deferrable=True``), and streams the MP4 and its thumbnail into ``download_to`` before
KIE's 20-minute download links and 14-day retention run out. A small downstream task prints where
the video was stored.

Runs unchanged against the bundled simulator (``runway-sim``) or the real API: the ``runway_default``
connection decides which. The destination is the ``output_dir`` param (any ``ObjectStoragePath`` URL:
``file:///...``, ``s3://bucket/prefix/``, ``gs://...``), set by the deployment through
``RUNWAY_OUTPUT_DIR``; whoever triggers a run cannot point it anywhere else.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

DEFAULT_OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-videos/")

with DAG(
    dag_id="example_runway_persist",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "prompt": Param("A lighthouse on a cliff at dawn, waves below, cinematic", type="string"),
        # One allowed value: a run's conf must not send the files to a store of its choosing.
        "output_dir": Param(DEFAULT_OUTPUT_DIR, type="string", enum=[DEFAULT_OUTPUT_DIR]),
    },
    tags=["example", "runway"],
) as dag:
    generate = RunwayGenerateOperator(
        task_id="generate_and_store",
        prompt="{{ params.prompt }}",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=float(os.environ.get("RUNWAY_POLL_INTERVAL", "5")),
        download_to="{{ params.output_dir }}{{ ds_nodash }}/",
    )

    @task
    def report(result: dict[str, Any]) -> str:
        """Print the stored video's location for the person who ran the DAG."""
        print("Runway result:\n" + json.dumps(result, indent=2, sort_keys=True))
        print(f"Runway task {result['task_id']} {result['state']}: stored video at {result['video_path']}")
        return str(result["video_path"])

    # `output` is an XComArg resolved at run time to the operator's return value.
    report(cast("dict[str, Any]", generate.output))
