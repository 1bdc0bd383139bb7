"""A batch that stores its videos and announces them as an asset, with what each video cost.

Each mapped ``RunwayGenerateOperator`` stores its video under the deployment's ``RUNWAY_OUTPUT_DIR`` and names
the ``runway_videos`` asset (a Dataset on Airflow 2) in its ``outlets``. Every success then emits one asset
event whose ``extra`` says which video arrived: the Runway task id, family, duration, quality, the video URL
without its query string, the stored path and size, and the credits. ``example_runway_publish`` is scheduled
on that asset and lists the new videos from those events.

Each generation also pushes a ``runway_usage`` XCom (credits, family, duration, quality, charged); the
``summary`` task adds them up for the night. Credits come from KIE's published prices
(``airflow_provider_runway.core.pricing``; the connection extra ``price_table`` overrides them). Runs
unchanged against the bundled simulator or the real API.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

#: Where the videos go, chosen by the deployment, never by a run's conf.
OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-videos/")
#: The stored videos, as one asset; ``example_runway_publish`` names the same URI.
RUNWAY_VIDEOS = Asset(f"{OUTPUT_DIR}published")
DEFAULT_PROMPTS = [
    "A paper boat drifting down a rain gutter, macro, morning light",
    "A hot-air balloon rising over terraced fields at dawn, aerial",
]

with DAG(
    dag_id="example_runway_assets_batch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "prompts": Param(DEFAULT_PROMPTS, type="array"),
        "output_dir": Param(OUTPUT_DIR, type="string", enum=[OUTPUT_DIR]),
    },
    tags=["example", "runway", "assets"],
) as dag:

    @task
    def load_prompts(**context: Any) -> list[str]:
        """Tonight's prompts (from the run's conf, else the default list)."""
        return list(context["params"]["prompts"])

    generate = RunwayGenerateOperator.partial(
        task_id="generate",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=float(os.environ.get("RUNWAY_POLL_INTERVAL", "5")),
        download_to="{{ params.output_dir }}published/{{ ds_nodash }}/",
        outlets=[RUNWAY_VIDEOS],
    ).expand(prompt=load_prompts())

    @task(trigger_rule="all_done")
    def summary(**context: Any) -> dict[str, Any]:
        """What the night cost: the ``runway_usage`` of every generation, charged or not."""
        pulled = context["ti"].xcom_pull(task_ids="generate", key="runway_usage")
        # Airflow 3 returns a mapped task's one XCom bare, not in a list: a batch of one, or one usage pushed.
        usages = [u for u in ([pulled] if isinstance(pulled, dict) else pulled or []) if u]
        charged = [u for u in usages if u["charged"]]
        unknown = [u["task_id"] for u in charged if u["credits"] is None]
        total = sum(u["credits"] for u in charged if u["credits"] is not None)
        print(f"{len(usages)} generations, {len(charged)} charged: {total:g} credits")
        if unknown:
            print(f"credits unknown for {unknown} (see each usage's reason)")
        return {"generations": len(usages), "charged": len(charged), "credits": total, "unknown": unknown}

    generate >> summary()
