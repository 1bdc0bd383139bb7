"""Airflow-side callback helpers: key from the connection, DAG run requests, REST trigger."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
import responses

from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.core.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayCache,
    WebhookVerificationError,
    compute_signature,
)
from airflow_provider_runway.transfer.callbacks import (
    RUN_ID_PREFIX,
    callback_run_id,
    callback_run_request,
    trigger_dag_run,
    verify_runway_callback,
)

KEY = "hmac-key-from-connection"
NOW = 1_767_000_000
BODY = {"code": 200, "msg": "ok", "data": {"task_id": "task-42", "video_url": "https://f.test/v.mp4"}}
FAILED_BODY = {"code": 400, "msg": "Inappropriate content detected", "data": None, "taskId": "aleph-7"}
# Airflow 3's default [scheduler] allowed_run_id_pattern.
ALLOWED_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")


def set_connection(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any] | None = None) -> None:
    conn = {"conn_type": "runway", "host": "http://127.0.0.1:9", "password": "api-key", "extra": extra or {}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


def signed(body: dict[str, Any], key: str = KEY, timestamp: int = NOW) -> tuple[dict[str, str], bytes]:
    task_id = body.get("taskId") or body["data"]["task_id"]
    return (
        {SIGNATURE_HEADER: compute_signature(key, task_id, timestamp), TIMESTAMP_HEADER: str(timestamp)},
        json.dumps(body).encode(),
    )


class TestVerifyRunwayCallback:
    def test_key_comes_from_the_connection(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"webhook_hmac_key": KEY})
        headers, body = signed(BODY)
        task = verify_runway_callback(headers, body, now=NOW)
        assert (task.task_id, task.status) == ("task-42", TaskStatus.SUCCEEDED)

    def test_signature_under_another_key_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"webhook_hmac_key": KEY})
        headers, body = signed(BODY, key="attacker-key")
        with pytest.raises(WebhookVerificationError) as err:
            verify_runway_callback(headers, body, now=NOW)
        assert err.value.reason == "bad_signature"
        assert KEY not in str(err.value)

    def test_skew_and_replay_options_are_passed_on(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"webhook_hmac_key": KEY})
        headers, body = signed(BODY, timestamp=NOW - 100)
        with pytest.raises(WebhookVerificationError, match="old"):
            verify_runway_callback(headers, body, now=NOW, max_skew=50)
        cache = ReplayCache()
        verify_runway_callback(headers, body, now=NOW, replay_cache=cache)
        with pytest.raises(WebhookVerificationError) as err:
            verify_runway_callback(headers, body, now=NOW, replay_cache=cache)
        assert err.value.reason == "replayed"

    def test_missing_key_refuses_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch)
        headers, body = signed(BODY)
        with pytest.raises(WebhookVerificationError, match="webhook_secret") as err:
            verify_runway_callback(headers, body, now=NOW)
        assert err.value.reason == "no_key"

    def test_missing_key_can_be_accepted_explicitly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch)
        task = verify_runway_callback({}, json.dumps(FAILED_BODY), require_signature=False)
        assert (task.task_id, task.family, task.status) == ("aleph-7", TaskFamily.ALEPH, TaskStatus.FAILED)
        with pytest.raises(WebhookVerificationError) as err:
            verify_runway_callback({}, b"nonsense", require_signature=False)
        assert err.value.reason == "malformed_body"

    def test_other_connection_id(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "runway", "password": "k", "extra": {"webhook_hmac_key": "other"}}
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_PROD", json.dumps(conn))
        headers, body = signed(BODY, key="other")
        assert verify_runway_callback(headers, body, runway_conn_id="runway_prod", now=NOW).task_id == "task-42"


class TestRunRequest:
    @pytest.mark.parametrize(
        "task_id", ["ee603959-debb-48d1-98c4-a6d1c717eba6", "../../x", "a b/c", "..x..", "é" * 3 + "z"]
    )
    def test_run_id_is_stable_and_valid_for_airflow(self, task_id: str) -> None:
        run_id = callback_run_id(task_id)
        assert run_id == callback_run_id(task_id)
        assert run_id.startswith(RUN_ID_PREFIX)
        assert ALLOWED_RUN_ID.match(run_id) and ".." not in run_id

    def test_success_request_carries_ids_only(self) -> None:
        task = RunwayTask("task-42", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url="https://f.test/v.mp4")
        assert callback_run_request(task, family="runway", note="from KIE") == {
            "dag_run_id": "runway__task-42",
            "logical_date": None,
            "conf": {"runway_task_id": "task-42", "family": "runway"},
            "note": "from KIE",
        }

    def test_failure_request_carries_no_unsigned_field(self) -> None:
        task = RunwayTask("aleph-7", TaskFamily.ALEPH, TaskStatus.FAILED, fail_code="400", fail_message="Rejected")
        assert callback_run_request(task, family=TaskFamily.ALEPH)["conf"] == {
            "runway_task_id": "aleph-7",
            "family": "aleph",
        }
        assert callback_run_request("aleph-7", family="aleph")["conf"] == {
            "runway_task_id": "aleph-7",
            "family": "aleph",
        }


class TestTriggerDagRun:
    TASK = RunwayTask("task-42", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url="https://f.test/v.mp4")
    URL = "http://airflow.test:8080/api/v2/dags/runway_ingest/dagRuns"

    @responses.activate
    def test_posts_the_request_with_the_token(self) -> None:
        responses.add(responses.POST, self.URL, json={"dag_run_id": "runway__task-42", "state": "queued"})
        assert trigger_dag_run(
            "http://airflow.test:8080/", "runway_ingest", self.TASK, family="runway", token="jwt-1"
        ) == ("runway__task-42")
        sent = responses.calls[0].request
        assert sent.headers["Authorization"] == "Bearer jwt-1"
        assert json.loads(sent.body or b"{}") == callback_run_request(self.TASK, family="runway")

    @responses.activate
    def test_redelivery_is_a_no_op(self) -> None:
        responses.add(responses.POST, self.URL, status=409, json={"detail": "already exists"})
        assert (
            trigger_dag_run("http://airflow.test:8080", "runway_ingest", self.TASK, family="runway", token="jwt-1")
            is None
        )

    @responses.activate
    @pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
    def test_other_errors_raise_without_the_token(self, status: int) -> None:
        responses.add(responses.POST, self.URL, status=status, json={"detail": "nope"})
        with pytest.raises(requests.HTTPError, match=f"HTTP {status}") as err:
            trigger_dag_run("http://airflow.test:8080", "runway_ingest", self.TASK, family="runway", token="secret-jwt")
        assert "secret-jwt" not in str(err.value)

    @responses.activate
    def test_dag_id_is_quoted_and_session_reused(self) -> None:
        responses.add(responses.POST, "http://a.test/api/v2/dags/odd%2Fid/dagRuns", json={"dag_run_id": "r"})
        with requests.Session() as session:
            assert (
                trigger_dag_run("http://a.test", "odd/id", self.TASK, family="runway", token="t", session=session)
                == "r"
            )
