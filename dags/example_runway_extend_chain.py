"""Extend a Runway video twice: generate, then continue it with new prompts.

``RunwayExtendOperator`` takes the Runway task id of a finished video as ``source_task_id``; the
XComArg ``XComArg(generate, key="task_id")`` passes it downstream and sets the dependency. Each extension
keeps the source's aspect ratio, and its result carries ``parent_task_id``.

Runs unchanged against the bundled simulator or the real API through the ``runway_default``
connection (see ``example_runway_text_to_video``). ``RUNWAY_POLL_INTERVAL`` sets the poll interval.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, XComArg, task

from airflow_provider_runway.operators.runway import RunwayExtendOperator, RunwayGenerateOperator

POLL_INTERVAL = float(os.environ.get("RUNWAY_POLL_INTERVAL", "5"))

with DAG(
    dag_id="example_runway_extend_chain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runway"],
) as dag:
    opening = RunwayGenerateOperator(
        task_id="opening",
        prompt="A hot-air balloon lifts off from a misty valley at sunrise",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    middle = RunwayExtendOperator(
        task_id="middle",
        source_task_id=XComArg(opening, key="task_id"),
        prompt="The balloon rises above the clouds as the sun breaks through",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    ending = RunwayExtendOperator(
        task_id="ending",
        source_task_id="{{ ti.xcom_pull(task_ids='middle', key='runway_task_id') }}",
        prompt="The balloon drifts toward distant snowy mountains",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    middle >> ending

    @task
    def storyboard(first: Any, second: Any, third: Any) -> list[str]:
        """The three clips in order."""
        print("\n".join((first, second, third)))
        return [first, second, third]

    storyboard(XComArg(opening, key="video_url"), XComArg(middle, key="video_url"), XComArg(ending, key="video_url"))
