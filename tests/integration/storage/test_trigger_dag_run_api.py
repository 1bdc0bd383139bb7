"""trigger_dag_run against Airflow's own REST API, served on loopback by uvicorn in this process."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
import requests
from airflow.sdk import DAG, task

from airflow_provider_runway.callbacks import callback_run_id, trigger_dag_run
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def airflow_api(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token) of Airflow's api-server with the simple auth manager, all users admin."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app("core"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "api-server did not start"
        time.sleep(0.05)
    token = requests.get(f"{base}/auth/token", timeout=10).json()["access_token"]
    try:
        yield base, token
    finally:
        server.should_exit = True
        thread.join(10)


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
    run_id = trigger_dag_run(base, dag.dag_id, done, token=token)
    assert run_id == callback_run_id(done.task_id)
    # KIE redelivers: the same run id is refused with 409, which means "already handled".
    assert trigger_dag_run(base, dag.dag_id, done, token=token) is None
    run = requests.get(
        f"{base}/api/v2/dags/{dag.dag_id}/dagRuns/{run_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert run["conf"] == {"runway_task_id": done.task_id, "family": "runway", "state": "succeeded"}
    assert run["logical_date"] is None
    with pytest.raises(requests.HTTPError, match="HTTP 404"):
        trigger_dag_run(base, "no_such_dag", done, token=token)
    with pytest.raises(requests.HTTPError, match=r"HTTP 40[13]"):
        trigger_dag_run(base, dag.dag_id, done, token="forged")
