"""Callbacks: documented payloads for both families, signatures, retries."""

from __future__ import annotations

import pytest

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.results import TaskStatus, parse_callback
from airflow_provider_runway.core.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches
from tests.integration.simulator.sim_helpers import Api, Receiver

pytestmark = pytest.mark.integration


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_runway_success_callback_unsigned(runway_sim, api: Api, receiver: Receiver):
    task_id = api.generate(callBackUrl=f"{receiver.url}/hook")
    [call] = receiver.wait(1)
    body = call["body"]
    assert call["path"] == "/hook"
    assert body["code"] == 200 and body["msg"] == "All generated successfully."
    assert body["data"] == {
        "task_id": task_id,
        "video_id": f"v-{task_id}",
        "video_url": f"{runway_sim.url}/files/{task_id}.mp4",
        "image_url": f"{runway_sim.url}/files/{task_id}.png",
    }
    assert SIGNATURE_HEADER.lower() not in lower(call["headers"])
    task = parse_callback(body)
    assert task.status is TaskStatus.SUCCEEDED and task.task_id == task_id
    log = runway_sim.wait_for_callbacks(1)
    assert log[0]["delivered"] is True and log[0]["attempts"] == 1 and log[0]["signed"] is False
    assert runway_sim.counters()["callbacks_sent"] == 1


def test_runway_failure_callback(runway_sim, api: Api, receiver: Receiver):
    task_id = api.generate(callBackUrl=receiver.url + "/hook")
    runway_sim.fail_task(task_id, code=400, message="Inappropriate content detected")
    [call] = receiver.wait(1)
    assert call["body"] == {
        "code": 400,
        "msg": "Inappropriate content detected",
        "data": {"task_id": task_id, "video_id": "", "video_url": "", "image_url": ""},
    }
    assert parse_callback(call["body"]).status is TaskStatus.FAILED


def test_extend_callback(runway_sim, api: Api, receiver: Receiver):
    source = api.generate()
    api.wait_runway(source)
    body = {"taskId": source, "prompt": "more", "callBackUrl": receiver.url + "/x"}
    extension = api.data(api.post(wire.RUNWAY_EXTEND_PATH, body))["taskId"]
    [call] = receiver.wait(1)
    assert call["body"]["data"]["task_id"] == extension


def test_aleph_callbacks(runway_sim, api: Api, receiver: Receiver):
    ok_id = api.aleph(callBackUrl=receiver.url + "/a")
    bad_id = api.aleph(callBackUrl=receiver.url + "/b")
    runway_sim.fail_task(bad_id, code=400, message="Could not read the input video")
    calls = {c["path"]: c["body"] for c in receiver.wait(2)}
    assert calls["/a"] == {
        "code": 200,
        "msg": "success",
        "data": {
            "result_video_url": f"{runway_sim.url}/files/{ok_id}.mp4",
            "result_image_url": f"{runway_sim.url}/files/{ok_id}.png",
        },
        "taskId": ok_id,
    }
    assert calls["/b"] == {"code": 400, "msg": "Could not read the input video", "data": None, "taskId": bad_id}
    assert parse_callback(calls["/a"]).status is TaskStatus.SUCCEEDED
    assert parse_callback(calls["/b"]).status is TaskStatus.FAILED


@pytest.mark.runway_sim(webhook_hmac_key="whsec-test")
def test_signed_callbacks(runway_sim, api: Api, receiver: Receiver):
    task_id = api.generate(callBackUrl=receiver.url + "/hook")
    [call] = receiver.wait(1)
    headers = lower(call["headers"])
    stamp, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    assert stamp.isdigit()
    assert signature_matches("whsec-test", task_id, stamp, signature)
    assert not signature_matches("other-key", task_id, stamp, signature)
    assert runway_sim.wait_for_callbacks(1)[0]["signed"] is True
    assert "whsec-test" not in str(runway_sim.config())


def test_callback_retried_until_accepted(runway_sim, api: Api, receiver: Receiver):
    receiver.statuses = [500, 503]
    api.generate(callBackUrl=receiver.url + "/hook")
    log = runway_sim.wait_for_callbacks(1)
    assert len(receiver.received) == 3
    assert log[0]["attempts"] == 3 and log[0]["delivered"] is True and log[0]["status"] == 200


def test_callback_gives_up_after_three_attempts(runway_sim, api: Api, receiver: Receiver):
    receiver.statuses = [500] * 5
    api.generate(callBackUrl=receiver.url + "/hook")
    log = runway_sim.wait_for_callbacks(1)
    assert len(receiver.received) == 3
    assert log[0]["delivered"] is False and log[0]["status"] == 500
    assert runway_sim.counters()["callbacks_failed"] == 1


def test_unreachable_callback_is_counted_as_failed(runway_sim, api: Api):
    api.generate(callBackUrl="http://127.0.0.1:9/nothing-listens")
    log = runway_sim.wait_for_callbacks(1)
    assert log[0]["delivered"] is False and log[0]["attempts"] == 3


def test_callback_after_pause_is_sent_on_resume(runway_sim, api: Api, receiver: Receiver):
    runway_sim.pause()
    task_id = api.generate(callBackUrl=receiver.url + "/hook")
    runway_sim.wait_for(task_id, "generating")
    assert receiver.wait(1, timeout=0.5) == []
    runway_sim.resume()
    [call] = receiver.wait(1)
    assert call["body"]["data"]["task_id"] == task_id


def test_concurrency_failure_reported_by_callback(runway_sim, api: Api, receiver: Receiver):
    runway_sim.configure(concurrency_limit=1)  # "fail_task" is the default
    api.generate()
    over = api.generate(callBackUrl=receiver.url + "/hook")
    assert api.record(over)["failMsg"] == "Reached the limit for concurrent generations"
    [call] = receiver.wait(1)
    assert call["body"] == {
        "code": 400,
        "msg": "Reached the limit for concurrent generations",
        "data": {"task_id": over, "video_id": "", "video_url": "", "image_url": ""},
    }
