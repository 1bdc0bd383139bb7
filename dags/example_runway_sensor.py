"""Submit now, wait elsewhere: ``RunwayTaskSensor`` on a task created without waiting.

``RunwayGenerateOperator(wait_for_completion=False)`` returns as soon as the task exists (its return
value is ``task_id``, ``family`` and ``state``). ``RunwayTaskSensor`` then waits for any Runway or
Aleph task id (templated), here once deferrable (through the triggerer) and once in ``reschedule``
mode (the worker slot is released between pokes). Both fail as soon as the remote task fails, not
only on timeout (``soft_fail=True`` skips instead), and return the normalised task.

Runs unchanged against the bundled simulator or the real API through the ``runway_default``
connection (see ``example_runway_text_to_video``). ``RUNWAY_POLL_INTERVAL`` sets the poke interval.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.sensors.runway import RunwayTaskSensor

POLL_INTERVAL = float(os.environ.get("RUNWAY_POLL_INTERVAL", "5"))

with DAG(
    dag_id="example_runway_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runway"],
) as dag:
    submit = RunwayGenerateOperator(
        task_id="submit",
        prompt="Time-lapse of clouds rolling over a mountain ridge",
        wait_for_completion=False,
    )

    wait_deferred = RunwayTaskSensor(
        task_id="wait_deferred",
        runway_task_id=XComArg(submit, key="task_id"),
        family="runway",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=pendulum.duration(minutes=30),
    )

    wait_rescheduled = RunwayTaskSensor(
        task_id="wait_rescheduled",
        runway_task_id="{{ ti.xcom_pull(task_ids='submit', key='runway_task_id') }}",
        mode="reschedule",
        poke_interval=POLL_INTERVAL,
        timeout=pendulum.duration(minutes=30),
    )
    submit >> wait_rescheduled
