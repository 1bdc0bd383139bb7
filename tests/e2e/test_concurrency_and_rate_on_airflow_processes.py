"""Mapped batches against the account's rate and concurrency limits, on Airflow's own processes (issue 14).

The nightly batch example (deferrable ``RunwayGenerateOperator`` mapped over the prompts, in a pool that
counts deferred tasks) runs twice on the installed Airflow's real processes against ``runway-sim`` on
loopback (``conftest.airflow_stack``):

(a) **rate limit**: 40 prompts against the simulator's create rate limit. The executor's few worker
    slots cannot reach KIE's 20 creates per 10 s, so the window is lowered to
    :data:`RATE_LIMIT_CREATES` per 10 s, which they do exceed: the simulator answers 429s (the count is
    printed and must not be zero), the hook retries them after ``Retry-After``, and the run ends with 40
    videos and exactly 40 creations.
(b) **concurrency limit**: 30 prompts through a pool of 20 against an account limit of 10 in KIE's
    current form (the create is accepted, then the task fails with "Reached the limit for concurrent
    generations" before charging). The operators create again with back-off inside the same try: the
    run ends with 30 videos, 30 creations, and every task instance on try 1.

Both need an executor that runs task instances in parallel (Airflow 3's LocalExecutor); Airflow 2.11's
stack uses the SequentialExecutor, so the test is skipped there.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

from .conftest import REPO_ROOT, AirflowStack, ProcessRegistry, airflow_stack, start_runway_sim, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not AIRFLOW_V_3_0_PLUS,
        reason="Airflow 2.11's e2e stack runs the SequentialExecutor: one task at a time cannot load the limits",
    ),
]

DAG_ID = "example_runway_nightly_batch"
DAG_FILE = "example_runway_nightly_batch.py"
MAPPED_TASK_ID = "generate"
POOL = "runway_generations"
API_KEY = "-".join(["sk", "e2e", "limits", "7c41"])
#: Creates allowed per 10 s window in proof (a): below what the executor's slots reach (see the docstring).
RATE_LIMIT_CREATES = 5
RATE_LIMIT_WINDOW = 10.0
BATCH_A = 40
BATCH_B = 30
POOL_B = 20
ACCOUNT_LIMIT_B = 10
#: Generation times: long enough that no trigger fires while its worker is still wrapping up the deferral
#: (Airflow 3.3.2 may fail such a task: apache/airflow#67287), and in (b) long enough that the pool's
#: creations (about one per second from 4 worker slots) overrun the account's 10 concurrent generations.
GENERATING_SECONDS_A = 10.0
GENERATING_SECONDS_B = 20.0


def prompts(count: int, tag: str) -> list[str]:
    return [f"E2E {tag} shot {n}: a paper boat on a still pond" for n in range(1, count + 1)]


def start_stack(registry: ProcessRegistry, tmp: Path, sim_url: str, output_dir: Path) -> AirflowStack:
    connection = {"conn_type": "runway", "host": sim_url, "password": API_KEY}
    stack = airflow_stack(
        registry,
        home=tmp / "airflow",
        dags_folder=REPO_ROOT / "dags",
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "RUNWAY_POLL_INTERVAL": "0.5",
            "RUNWAY_OUTPUT_DIR": f"file://{output_dir}/",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
        },
    )
    stack.start()
    return stack


def run_batch(stack: AirflowStack, run_id: str, logical_date: datetime, batch: list[str], timeout: float) -> str:
    stack.trigger(DAG_ID, run_id, logical_date, {"prompts": batch})

    def finished() -> str | None:
        stack.assert_alive()
        state = stack.dag_run(DAG_ID, run_id)["state"]
        return state if state in ("success", "failed") else None

    return str(wait_until(finished, timeout, f"run {run_id} to finish", stack.observe_interval))


def generate_instances(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    return [t for t in stack.task_instances(DAG_ID, run_id) if t["task_id"] == MAPPED_TASK_ID]


def videos(output_dir: Path) -> list[Path]:
    return sorted(output_dir.rglob("*.mp4"))


def test_mapped_batches_ride_out_the_rate_and_concurrency_limits(
    process_registry: ProcessRegistry, e2e_tmp: Path
) -> None:
    t_start = time.monotonic()
    sim_args = [
        "--wait-seconds",
        "0.2",
        "--queueing-seconds",
        "0.2",
        "--generating-seconds",
        str(GENERATING_SECONDS_A),
        "--concurrency-limit",
        "0",
        "--rate-limit-creates",
        str(RATE_LIMIT_CREATES),
        "--rate-limit-window",
        str(RATE_LIMIT_WINDOW),
    ]
    sim_process = start_runway_sim(process_registry, e2e_tmp, sim_args)
    sim = sim_process.client()
    output_dir = e2e_tmp / "videos"
    stack = start_stack(process_registry, e2e_tmp, sim_process.url, output_dir)
    stack.wait_for_dag(DAG_ID, DAG_FILE, timeout=90)
    stack.airflow_cli("pools", "set", POOL, str(POOL_B), "e2e limits", "--include-deferred")
    stack.unpause(DAG_ID)
    startup = time.monotonic() - t_start
    print(f"\n== e2e limits on Airflow {airflow_version}, {stack.executor} with {stack.executor_parallelism} slots")
    print(f"startup: {startup:.1f}s")
    label = sim.account_label(API_KEY)
    now = datetime.now(timezone.utc).replace(microsecond=0)

    # (a) 40 creates against the rate limit.
    t_a = time.monotonic()
    state_a = run_batch(stack, "e2e_rate_limit", now - timedelta(days=2), prompts(BATCH_A, "rate"), timeout=400)
    counters_a = sim.counters()
    tis_a = generate_instances(stack, "e2e_rate_limit")
    print(
        f"(a) {BATCH_A} prompts, rate limit {RATE_LIMIT_CREATES} creates per {RATE_LIMIT_WINDOW:g} s: run {state_a} "
        f"in {time.monotonic() - t_a:.1f}s; 429s answered: {counters_a['rate_limited_total']}; "
        f"generate requests: {counters_a['requests'].get('generate')}; tasks_created: {counters_a['tasks_created']}; "
        f"tasks_by_state: {counters_a['tasks_by_state']}; try numbers: {dict(Counter(t['try_number'] for t in tis_a))}"
    )
    videos_a = len(videos(output_dir))
    assert state_a == "success", Counter(t["state"] for t in tis_a)
    assert Counter(t["state"] for t in tis_a) == Counter({"success": BATCH_A})
    assert counters_a["rate_limited_total"] > 0  # the limit was reached: the proof is not vacuous
    assert counters_a["tasks_created"] == {label: BATCH_A}  # exactly one creation per prompt
    assert counters_a["tasks_by_state"] == {"success": BATCH_A}
    assert videos_a == BATCH_A

    # (b) 30 prompts through a pool of 20 against an account limit of 10 (accept, then fail the task).
    sim.configure(
        rate_limit_creates=0,
        concurrency_limit=ACCOUNT_LIMIT_B,
        concurrency_mode="fail_task",
        generating_seconds=GENERATING_SECONDS_B,
    )
    sim.reset()
    t_b = time.monotonic()
    state_b = run_batch(stack, "e2e_concurrency", now - timedelta(days=1), prompts(BATCH_B, "busy"), timeout=400)
    counters_b = sim.counters()
    tis_b = generate_instances(stack, "e2e_concurrency")
    tries_b = Counter(t["try_number"] for t in tis_b)
    print(
        f"(b) {BATCH_B} prompts, pool {POOL_B}, account limit {ACCOUNT_LIMIT_B}: run {state_b} in "
        f"{time.monotonic() - t_b:.1f}s; concurrency failures (accepted, failed, not charged): "
        f"{counters_b['concurrency_failures']}; generate requests: {counters_b['requests'].get('generate')}; "
        f"tasks_created: {counters_b['tasks_created']}; tasks_by_state: {counters_b['tasks_by_state']}; "
        f"credits_spent: {counters_b['credits_spent']}; try numbers: {dict(tries_b)}"
    )
    print(f"whole test: {time.monotonic() - t_start:.1f}s")
    assert state_b == "success", Counter(t["state"] for t in tis_b)
    assert Counter(t["state"] for t in tis_b) == Counter({"success": BATCH_B})
    assert tries_b == Counter({1: BATCH_B})  # no failed try
    assert sum(counters_b["concurrency_failures"].values()) > 0  # the pool did overrun the account's limit
    assert counters_b["tasks_created"] == {label: BATCH_B}
    assert counters_b["tasks_by_state"].get("success") == BATCH_B
    assert len(videos(output_dir)) - videos_a == BATCH_B
