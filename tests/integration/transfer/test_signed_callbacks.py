"""Signed callbacks from the simulator, verified by a receiver on loopback, then fetched and stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fsspec
import pytest

from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.core.results import RunwayTask, TaskStatus
from airflow_provider_runway.core.webhooks import ReplayCache, WebhookVerificationError
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.simulator.pytest_plugin import TEST_API_KEY
from airflow_provider_runway.transfer.callbacks import callback_run_request, verify_runway_callback
from airflow_provider_runway.transfer.downloads import persist_task_result

pytestmark = pytest.mark.integration

SIM_KEY = "sim-webhook-hmac-key"


class Receiver:
    """A minimal web app: verify each callback, answer 401 on failure and 200 otherwise."""

    def __init__(self, verify: Callable[[dict[str, str], bytes], RunwayTask]) -> None:
        self.verify = verify
        self.accepted: list[RunwayTask] = []
        self.rejected: list[str] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    task = receiver.verify(dict(self.headers.items()), body)
                except WebhookVerificationError as err:
                    receiver.rejected.append(err.reason)
                    status = 401
                else:
                    receiver.accepted.append(task)
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.event.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/runway/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def signing_sim(runway_sim_factory: Callable[..., Any]) -> Any:
    return runway_sim_factory(webhook_hmac_key=SIM_KEY, callback_retry_delay=0.05)


def hook_for(
    monkeypatch: pytest.MonkeyPatch, sim: Any, hmac_key: str, extra_name: str = "webhook_secret"
) -> RunwayHook:
    conn = {"conn_type": "runway", "host": sim.url, "password": TEST_API_KEY, "extra": {extra_name: hmac_key}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return RunwayHook()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(verify: Callable[[dict[str, str], bytes], RunwayTask]) -> Receiver:
        started.append(Receiver(verify))
        return started[-1]

    yield make
    for receiver in started:
        receiver.close()


def create(hook: RunwayHook, callback_url: str) -> str:
    return hook.create_task(GenerateRequest(prompt="Waves at dusk", callback_url=callback_url))


def test_callback_verified_then_fetched_and_stored(
    signing_sim: Any, receiver_factory: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_for(monkeypatch, signing_sim, SIM_KEY)
    cache = ReplayCache()
    receiver = receiver_factory(lambda headers, body: verify_runway_callback(headers, body, replay_cache=cache))
    task_id = create(hook, receiver.url)
    [delivery] = signing_sim.wait_for_callbacks(1)
    assert delivery["delivered"] and delivery["signed"]
    [hint] = receiver.accepted
    assert (hint.task_id, hint.status) == (task_id, TaskStatus.SUCCEEDED)
    assert callback_run_request(hint, family="runway")["conf"] == {"runway_task_id": task_id, "family": "runway"}
    # What the triggered DAG does: read the task from the API, then keep the files.
    task = hook.get_task(task_id)
    assert task.status is TaskStatus.SUCCEEDED and task.video_url == hint.video_url
    dest = "memory://callback-flow/"
    try:
        stored = persist_task_result(task.to_dict(), dest, hook=hook)
        # Read through fsspec: Airflow before 3.2 has no memory:// filesystem of its own.
        with fsspec.open(stored["video_path"], "rb") as video:
            assert len(video.read()) == stored["video_size"] > 0
    finally:
        fsspec.filesystem("memory").rm("/callback-flow", recursive=True)


def test_failure_callback_is_verified(
    signing_sim: Any, receiver_factory: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_for(monkeypatch, signing_sim, SIM_KEY, extra_name="webhook_hmac_key")  # the old name still works
    receiver = receiver_factory(lambda headers, body: verify_runway_callback(headers, body))
    task_id = create(hook, receiver.url)
    signing_sim.fail_task(task_id, code=400, message="Inappropriate content detected")
    signing_sim.wait_for_callbacks(1)
    [task] = receiver.accepted
    assert (task.task_id, task.status, task.fail_code) == (task_id, TaskStatus.FAILED, "400")
    assert task.fail_message == "Inappropriate content detected"


def test_receiver_with_another_key_rejects_every_delivery(
    signing_sim: Any, receiver_factory: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_for(monkeypatch, signing_sim, "not-the-key-kie-signs-with")
    receiver = receiver_factory(lambda headers, body: verify_runway_callback(headers, body))
    create(hook, receiver.url)
    [delivery] = signing_sim.wait_for_callbacks(1)
    assert not delivery["delivered"]
    assert receiver.accepted == []
    assert receiver.rejected and set(receiver.rejected) == {"bad_signature"}


def test_unsigned_callbacks_are_refused_when_a_key_is_configured(
    runway_sim: Any, receiver_factory: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_for(monkeypatch, runway_sim, SIM_KEY)  # the simulator itself signs nothing
    receiver = receiver_factory(lambda headers, body: verify_runway_callback(headers, body))
    create(hook, receiver.url)
    runway_sim.wait_for_callbacks(1)
    assert receiver.accepted == []
    assert set(receiver.rejected) == {"missing_header"}
