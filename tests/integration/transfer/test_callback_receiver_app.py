"""The README's flow end to end: simulator callback -> receiver app -> Airflow REST API -> ingest DAG."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
import requests
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, task
from airflow.utils.state import DagRunState

from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.download import RunwayDownloadOperator
from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY
from airflow_provider_runway.transfer.callbacks import callback_run_id

pytest.importorskip("fastapi", reason="the README receiver is a FastAPI app; Airflow 2 does not install FastAPI")

from .callback_receiver_app import create_receiver
from .conftest import serialize, serve_asgi

pytestmark = pytest.mark.integration

HMAC_KEY = "kie-webhook-key-for-readme"


def ingest_dag(destination: str) -> DAG:
    """The README's ingest DAG: confirm the task through the API, then keep its files."""
    with DAG(
        dag_id=f"runway_ingest_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    ) as dag:

        @task(multiple_outputs=False)  # one XCom: Airflow 3.0 cannot store the None values of its keys
        def confirm(**context: Any) -> dict[str, Any]:
            conf = context["dag_run"].conf
            result = RunwayHook().get_task(conf["runway_task_id"], conf["family"])
            if result.status.value != "succeeded":
                raise AirflowFailException(f"Runway task {result.task_id} {result.status.value}: {result.fail_message}")
            return result.to_dict()

        RunwayDownloadOperator(task_id="store", task=confirm(), destination=destination)
    return dag


def test_signed_callback_starts_the_ingest_dag(
    airflow_api: tuple[str, str],
    runway_sim_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sim = runway_sim_factory(webhook_hmac_key=HMAC_KEY)
    conn = {"conn_type": "runway", "host": sim.url, "password": TEST_API_KEY, "extra": {"webhook_secret": HMAC_KEY}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    dag = ingest_dag(f"file://{tmp_path}/")
    serialize(dag)
    api_url, token = airflow_api
    receiver = create_receiver(HMAC_KEY, api_url, dag.dag_id, token=lambda: token)
    with serve_asgi(receiver) as receiver_url:
        task_id = RunwayHook().create_task(
            GenerateRequest(prompt="A fox in snow", callback_url=f"{receiver_url}/runway/callback/runway")
        )
        [delivery] = sim.wait_for_callbacks(1)
        assert delivery["delivered"] and delivery["status"] == 200
        # A forged callback for the same task is refused by the receiver.
        forged = requests.post(
            f"{receiver_url}/runway/callback/runway",
            json={"code": 200, "msg": "ok", "data": {"task_id": task_id, "video_url": "https://evil.test/x.mp4"}},
            headers={"X-Webhook-Timestamp": str(int(time.time())), "X-Webhook-Signature": "AAAA"},
            timeout=10,
        )
        assert forged.status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    runs = requests.get(f"{api_url}/api/v2/dags/{dag.dag_id}/dagRuns", headers=headers, timeout=10).json()
    [run] = runs["dag_runs"]
    assert run["dag_run_id"] == callback_run_id(task_id)
    assert run["conf"] == {"runway_task_id": task_id, "family": "runway"}  # nothing unsigned
    # Run the triggered DAG's work with the same conf (the scheduler would do this in production).
    result = dag.test(run_conf=run["conf"])
    assert result.state == DagRunState.SUCCESS
    assert (tmp_path / f"{task_id}.mp4").stat().st_size > 0
