"""KIE's current pages (issue 23 items 7-10) on the real simulator over loopback HTTP, read by the real core.

Extend with ``imageUrl``/``expandPrompt``, records with ``id``/``parentId``, a key's usage cap, the IP
whitelist, and the three failure messages: each produced by the simulator and classified by the core.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayBadInputError,
    RunwayConcurrencyLimitError,
    RunwayRateLimitedError,
    RunwayUsageCapError,
)
from airflow_provider_runway.core.results import parse_callback, parse_runway_record
from airflow_provider_runway.core.retry import waits_for_capacity
from airflow_provider_runway.simulator import SimulatorThread
from airflow_provider_runway.simulator.config import FREE_ACCOUNT_CAPACITY_MESSAGE
from tests.integration.simulator.sim_helpers import Api, Receiver

STYLES = pytest.mark.parametrize("runway_sim", ["body", "http"], indirect=True)
IMAGE = "https://example.com/still.png"


def _raises(response: Any) -> Exception:
    with pytest.raises(Exception) as caught:
        Api.data(response)
    return caught.value


# -- 7 --------------------------------------------------------------------------------------------------


def test_extend_takes_image_url_and_expand_prompt(runway_sim: SimulatorThread, api: Api) -> None:
    source = api.generate()
    api.wait_runway(source)
    body = {"taskId": source, "prompt": "more", "imageUrl": IMAGE, "expandPrompt": False}
    extension = api.data(api.post(wire.RUNWAY_EXTEND_PATH, body))["taskId"]
    params = api.record(extension)["generateParam"]
    assert (params["imageUrl"], params["expandPrompt"]) == (IMAGE, False)
    refused = api.post(wire.RUNWAY_EXTEND_PATH, {**body, "expandPrompt": "yes"})
    assert refused.json()["code"] == 422 and "expandPrompt" in refused.json()["msg"]
    unfetchable = api.post(wire.RUNWAY_EXTEND_PATH, {**body, "imageUrl": "https://gone.invalid/a.png"})
    assert unfetchable.json()["code"] == 451


# -- 8 --------------------------------------------------------------------------------------------------


def test_records_with_id_and_parent_id_are_read_by_the_core(runway_sim: SimulatorThread, api: Api) -> None:
    runway_sim.configure(record_style="ids")
    source = api.generate()
    api.wait_runway(source)
    extension = api.data(api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": source, "prompt": "more"}))["taskId"]
    record = api.wait_runway(extension)
    assert "taskId" not in record and "parentTaskId" not in record and "taskId" not in record["videoInfo"]
    assert (record["id"], record["parentId"], record["generateParam"]["parentId"]) == (extension, source, source)
    task = parse_runway_record(record)  # no asked-for id: the body's own
    assert (task.task_id, task.parent_task_id, task.status.value) == (extension, source, "succeeded")
    first = api.record(source)
    assert first["parentId"] == 0 and parse_runway_record(first).parent_task_id is None


# -- 9 --------------------------------------------------------------------------------------------------


@STYLES
def test_a_reached_usage_cap_is_a_429_the_core_does_not_retry(runway_sim: SimulatorThread, api: Api) -> None:
    runway_sim.configure(usage_cap_creates=1, usage_cap_period="daily")
    api.generate()
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "duration": 5, "aspectRatio": "16:9"})
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    error = _raises(refused)
    assert isinstance(error, RunwayUsageCapError) and error.cap == "daily" and not error.retryable
    assert "daily usage cap" in str(error)
    assert runway_sim.counters()["tasks_total"] == 1


@pytest.mark.parametrize("kind", ["cap_hourly", "cap_total"])
def test_usage_cap_faults_on_any_endpoint(runway_sim: SimulatorThread, api: Api, kind: str) -> None:
    task_id = api.generate()
    runway_sim.inject_fault("record-detail", kind, count=1)
    error = _raises(api.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": task_id}))
    assert isinstance(error, RunwayUsageCapError) and error.cap == kind.removeprefix("cap_")
    runway_sim.inject_fault("generate", "http429", count=1)  # the rate limit is still the rate limit
    assert type(_raises(api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x"}))) is RunwayRateLimitedError


@STYLES
def test_an_address_outside_the_whitelist_gets_a_401_naming_the_whitelist(
    runway_sim: SimulatorThread, api: Api
) -> None:
    runway_sim.configure(allowed_ips="10.0.0.7")
    error = _raises(api.get(wire.CREDIT_PATH))
    assert isinstance(error, RunwayAuthError)
    assert "You do not have access permissions" in str(error) and "IP whitelist" in str(error)
    runway_sim.configure(allowed_ips="10.0.0.7,127.0.0.1")
    assert isinstance(api.data(api.get(wire.CREDIT_PATH)), int)
    assert runway_sim.counters()["ip_refused"] == 1
    runway_sim.inject_fault("credit", "ip_refused", count=1)
    assert "IP whitelist" in str(_raises(api.get(wire.CREDIT_PATH)))


# -- 10 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["Incorrect image format.", "Unsupported width or height, please retry."])
def test_a_task_failed_for_its_input_is_a_bad_input_failure(
    runway_sim: SimulatorThread, api: Api, receiver: Receiver, message: str
) -> None:
    task_id = api.generate(callBackUrl=receiver.url + "/hook")
    runway_sim.fail_task(task_id, 400, message)
    record = api.record(task_id)
    assert parse_runway_record(record, task_id).failed_for_bad_input
    [call] = receiver.wait(1)
    callback = parse_callback(call["body"])
    assert callback.failed_for_bad_input and callback.fail_message == message and not waits_for_capacity(callback)


@pytest.mark.runway_sim(concurrency_limit=1, concurrency_message=FREE_ACCOUNT_CAPACITY_MESSAGE)
def test_the_free_account_message_is_capacity_in_both_concurrency_modes(runway_sim: SimulatorThread, api: Api) -> None:
    api.generate()
    over = api.generate()  # fail_task: accepted, failed at once, not charged
    task = parse_runway_record(api.record(over), over)
    assert task.fail_message == FREE_ACCOUNT_CAPACITY_MESSAGE and waits_for_capacity(task)
    runway_sim.configure(concurrency_mode="refuse")
    error = _raises(api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "duration": 5, "aspectRatio": "16:9"}))
    assert isinstance(error, RunwayConcurrencyLimitError) and waits_for_capacity(error)


@STYLES
def test_an_upload_that_is_not_an_image_given_as_image_url_is_bad_input(runway_sim: SimulatorThread, api: Api) -> None:
    uploaded = api.session.post(
        api.url + "/api/file-stream-upload", files={"file": ("notes.txt", b"not an image")}, data={"uploadPath": "in"}
    )
    url = uploaded.json()["data"]["downloadUrl"]
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "duration": 5, "imageUrl": url})
    assert refused.json() == {"code": 400, "msg": "Incorrect image format.", "data": None}
    error = _raises(refused)
    assert isinstance(error, RunwayBadInputError) and not error.retryable and "Incorrect image format." in str(error)
    assert runway_sim.counters()["tasks_total"] == 0
