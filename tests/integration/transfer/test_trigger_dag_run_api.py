"""trigger_dag_run against Airflow's own REST API, served on loopback by uvicorn in this process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pendulum
import pytest
import requests
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.transfer.callbacks import callback_run_id, trigger_dag_run
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not AIRFLOW_V_3_0_PLUS,
        reason="trigger_dag_run speaks Airflow 3's REST API (POST /api/v2/.../dagRuns, a bearer token from "
        "/auth/token); Airflow 2.11 serves neither, only /api/v1 with its own auth backends",
    ),
]


def serialized_dag() -> DAG:
    from .conftest import serialize

    with DAG(
        dag_id=f"runway_callback_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    ) as dag:

        @task
        def fetch(**context: Any) -> str:
            return str(context["dag_run"].conf["runway_task_id"])

        fetch()
    serialize(dag)
    return dag


def test_trigger_creates_one_run_per_task(airflow_api: tuple[str, str]) -> None:
    base, token = airflow_api
    dag = serialized_dag()
    done = RunwayTask("ee603959-debb-48d1", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url="https://f.test/v.mp4")
    run_id = trigger_dag_run(base, dag.dag_id, done, family="runway", token=token)
    assert run_id == callback_run_id(done.task_id)
    # KIE redelivers: the same run id is refused with 409, which means "already handled".
    assert trigger_dag_run(base, dag.dag_id, done, family="runway", token=token) is None
    run = requests.get(
        f"{base}/api/v2/dags/{dag.dag_id}/dagRuns/{run_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert run["conf"] == {"runway_task_id": done.task_id, "family": "runway"}
    assert run["logical_date"] is None
    with pytest.raises(requests.HTTPError, match="HTTP 404"):
        trigger_dag_run(base, "no_such_dag", done, family="runway", token=token)
    with pytest.raises(requests.HTTPError, match=r"HTTP 40[13]"):
        trigger_dag_run(base, dag.dag_id, done, family="runway", token="forged")


def test_password_token_of_the_readme_receiver(
    airflow_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.api_fastapi.app import create_app

    from .callback_receiver_app import password_token
    from .conftest import serve_asgi

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"receiver": "pw-123456"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "receiver:user")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    dag = serialized_dag()
    failed = RunwayTask("t-9", TaskFamily.ALEPH, TaskStatus.FAILED, fail_code="400", fail_message="Rejected")
    with serve_asgi(create_app("core")) as base:
        token = password_token(base, "receiver", "pw-123456")()
        assert trigger_dag_run(base, dag.dag_id, failed, family="aleph", token=token) == "runway__t-9"
        with pytest.raises(requests.HTTPError, match="401"):
            password_token(base, "receiver", "wrong")()
