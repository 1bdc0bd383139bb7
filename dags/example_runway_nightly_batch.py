"""A nightly batch: one Runway generation per prompt, with dynamic task mapping.

``RunwayGenerateOperator.partial(...).expand(prompt=...)`` creates one mapped task instance per
prompt. Each waits deferred, so hundreds of them hold no worker slots; the pool bounds how many
generations run at once on the account. KIE allows 10 concurrent generations per account, so the
pool has 10 slots and counts deferred tasks (``include_deferred``), which is where these tasks
spend their time. Create it once, as the example's setup does::

    airflow pools set runway_generations 10 "KIE Runway concurrent generations" --include-deferred

(or ``airflow pools import dags/runway_pools.json``). The prompt list is the ``prompts`` param, so
a run can bring its own with ``--conf '{"prompts": [...]}'``; results land under ``output_dir``,
which only the deployment sets (``RUNWAY_OUTPUT_DIR``).
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

RUNWAY_POOL = "runway_generations"
#: Where results go, chosen by the deployment (``RUNWAY_OUTPUT_DIR``), never by a run's conf.
OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-videos/")
DEFAULT_PROMPTS = [
    f"Product shot {n}: a ceramic mug on a wooden table, slow orbit, soft morning light" for n in range(1, 21)
]

with DAG(
    dag_id="example_runway_nightly_batch",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "prompts": Param(DEFAULT_PROMPTS, type="array"),
        # One allowed value, set by the deployment: a run's conf cannot choose where the files go.
        "output_dir": Param(OUTPUT_DIR, type="string", enum=[OUTPUT_DIR]),
    },
    tags=["example", "runway"],
) as dag:

    @task
    def load_prompts(**context: object) -> list[str]:
        """Tonight's prompts (from the run's conf, else the default list)."""
        params = context["params"]
        prompts = list(params["prompts"])  # type: ignore[index]
        print(f"{len(prompts)} prompts tonight")
        return prompts

    RunwayGenerateOperator.partial(
        task_id="generate",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        pool=RUNWAY_POOL,
        poll_interval=float(os.environ.get("RUNWAY_POLL_INTERVAL", "5")),
        download_to="{{ params.output_dir }}batch/{{ ds_nodash }}/",
        retries=2,
    ).expand(prompt=load_prompts())
