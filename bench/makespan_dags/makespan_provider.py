"""The provider's DAGs ``bench/makespan.py`` runs: a batch of Runway generations waited for in the triggerer.

* ``makespan_provider``: :class:`RunwayGenerateOperator` with ``deferrable=True``, mapped over the
  prompts; each task creates its generation, waits in the triggerer, and the trigger ends it there.
* ``makespan_resume_on_worker`` (variant ``C``, opt-in): as ``makespan_provider`` with
  ``end_in_triggerer=False``: every task resumes on a worker to finish, as before issue 15.

The http provider route is in ``makespan_http.py``: one file per route, so a task process parses (and
imports) only what its own DAG uses, as in a user's DAG folder. Both draw from one pool that counts
deferred tasks; the benchmark sets the sizes through the environment of the Airflow processes it starts.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

POOL = os.environ.get("MAKESPAN_POOL", "runway_makespan")
VIDEOS = int(os.environ.get("MAKESPAN_VIDEOS", "30"))
POLL_INTERVAL = float(os.environ.get("MAKESPAN_POLL_INTERVAL", "5"))
PROMPTS = [f"Makespan shot {n}: a paper boat on a still pond, slow dolly in" for n in range(1, VIDEOS + 1)]
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def provider_batch(dag_id: str, *, end_in_triggerer: bool) -> DAG:
    """The batch as the provider runs it: one deferrable generation per prompt, mapped, in the pool."""
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, max_active_runs=1) as dag:
        RunwayGenerateOperator.partial(
            task_id="generate",
            end_in_triggerer=end_in_triggerer,
            duration=5,
            quality="720p",
            aspect_ratio="16:9",
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            pool=POOL,
        ).expand(prompt=PROMPTS)
    return dag


provider_dag = provider_batch("makespan_provider", end_in_triggerer=True)
resume_on_worker_dag = provider_batch("makespan_resume_on_worker", end_in_triggerer=False)
