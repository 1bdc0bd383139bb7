"""DAGs for ``tests/e2e/test_outlets_and_listeners.py``, copied into a throwaway DAGs folder.

* ``runway_outlets_producer``: two deferrable generations, each with the same asset (a Dataset on
  Airflow 2.11) in its ``outlets`` and no ``download_to``;
* ``runway_outlets_consumer``: scheduled on that asset;
* ``runway_without_outlets``: the same two generations with no outlets.

The generations carry nothing else that Airflow runs at a worker's end of a task (no callbacks, no execute
hooks), so only the outlets, or a registered listener, can send them back to a worker.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

try:
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:  # Airflow 2.11 ships it in core
    from airflow.operators.empty import EmptyOperator  # type: ignore[no-redef]

VIDEOS = Asset("runway-e2e://videos/lighthouse")
TASK_IDS = ("dusk", "dawn")
START = pendulum.datetime(2025, 1, 1, tz="UTC")


def generations(outlets: list[Asset]) -> None:
    """One short deferrable generation per task id, in the DAG being defined."""
    for task_id in TASK_IDS:
        RunwayGenerateOperator(
            task_id=task_id,
            prompt=f"a lighthouse at {task_id}",
            duration=5,
            quality="720p",
            aspect_ratio="16:9",
            deferrable=True,
            poll_interval=0.5,
            retries=0,
            outlets=outlets,
        )


with DAG("runway_outlets_producer", schedule=None, start_date=START, catchup=False):
    generations([VIDEOS])

with DAG("runway_outlets_consumer", schedule=[VIDEOS], start_date=START, catchup=False):
    EmptyOperator(task_id="consume")

with DAG("runway_without_outlets", schedule=None, start_date=START, catchup=False):
    generations([])
