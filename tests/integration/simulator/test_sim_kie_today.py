"""What KIE's newer documentation says, on the real server: the create rate limit, concurrency
overflow as a failed task, failCode 400, Aleph successFlag 2/3, Aleph turned off, 1080p extend."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_runway.core import wire
from airflow_provider_runway.simulator import SimulatorThread, account_label
from tests.integration.simulator.sim_helpers import KEY, Api, Receiver

STYLES = pytest.mark.parametrize("runway_sim", ["body", "http"], indirect=True)
GENERATE = {"prompt": "a red fox", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}


@STYLES
def test_creates_over_the_rate_limit_get_http_429_with_retry_after(runway_sim: SimulatorThread, api: Api):
    runway_sim.configure(rate_limit_creates=3, rate_limit_window=1.0)
    for _ in range(3):
        api.generate()
    refused = api.post(wire.RUNWAY_GENERATE_PATH, GENERATE)
    assert refused.status_code == 429  # HTTP 429 in either error style, as KIE documents
    body = refused.json()
    assert body["code"] == 429 and "3 new requests per 1 seconds" in body["msg"] and body["data"] is None
    assert refused.headers["Retry-After"] == "1"
    assert api.post(wire.ALEPH_GENERATE_PATH, {"prompt": "x", "videoUrl": "https://h/v.mp4"}).status_code == 429
    assert api.get(wire.CREDIT_PATH).status_code == 200  # reads are not limited
    Api(runway_sim.url, key="another-key").generate()  # per key
    counters = runway_sim.counters()
    label = account_label(KEY)
    assert counters["rate_limited"][label] == 2 and counters["rate_limited_total"] == 2
    assert counters["tasks_created"][label] == 3 and counters["tasks_total"] == 4
    time.sleep(1.05)
    api.generate()  # the window has moved on; refused requests took no slot


def test_default_rate_limit_is_20_per_10_seconds(runway_sim: SimulatorThread, api: Api):
    from airflow_provider_runway.simulator import SimulatorConfig

    defaults = SimulatorConfig()
    assert (defaults.rate_limit_creates, defaults.rate_limit_window) == (20, 10.0)
    runway_sim.configure(rate_limit_creates=defaults.rate_limit_creates)  # the test fixture turns it off
    for _ in range(20):
        api.generate()
    refused = api.post(wire.RUNWAY_GENERATE_PATH, GENERATE)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 10
    runway_sim.configure(rate_limit_creates=0)
    api.generate()
    runway_sim.configure(rate_limit_creates=None)
    api.generate()
    assert runway_sim.counters()["rate_limited_total"] == 1


def test_concurrency_overflow_is_accepted_then_fails_for_free(runway_sim: SimulatorThread, api: Api):
    runway_sim.configure(concurrency_limit=1)
    api.generate()
    over = api.generate()
    record = api.record(over)
    assert (record["state"], record["failCode"], record["failMsg"]) == (
        "fail",
        400,
        "Reached the limit for concurrent generations",
    )
    account = runway_sim.account(KEY)
    assert account["credits_spent"] == 60 and account["tasks_created"] == 1
    counters = runway_sim.counters()
    assert counters["concurrency_failures"] == {account_label(KEY): 1} and counters["tasks_total"] == 2


@pytest.mark.runway_sim(failure_rate=1.0)
def test_random_failures_use_fail_code_400_by_default(runway_sim: SimulatorThread, api: Api, receiver: Receiver):
    record = api.wait_runway(api.generate(callBackUrl=receiver.url + "/hook"))
    assert record["state"] == "fail" and record["failCode"] == 400 and record["failMsg"]
    [call] = receiver.wait(1)
    assert call["body"]["code"] == 400
    assert call["body"]["data"] == {"task_id": record["taskId"], "video_id": "", "video_url": "", "image_url": ""}
    runway_sim.configure(failure_code=500, failure_message="Generation failed upstream")
    later = api.wait_runway(api.generate())
    assert (later["failCode"], later["failMsg"]) == (500, "Generation failed upstream")
    aleph = api.wait_aleph(api.aleph())
    assert (aleph["successFlag"], aleph["errorCode"], aleph["errorMessage"]) == (0, 500, "Generation failed upstream")


@pytest.mark.runway_sim(failure_rate=1.0, aleph_failure_flags=True)
def test_aleph_failures_with_success_flag_2_or_3(runway_sim: SimulatorThread, api: Api):
    failed = api.aleph()
    deadline = time.monotonic() + 10
    while (record := api.aleph_record(failed))["successFlag"] == 0 and time.monotonic() < deadline:
        time.sleep(0.03)
    assert record["successFlag"] == 3 and record["errorCode"] == 400 and record["errorMessage"]
    assert record["response"] is None and record["completeTime"]
    runway_sim.configure(concurrency_limit=1, failure_rate=0.0)
    api.aleph()
    over = api.aleph_record(api.aleph())
    assert over["successFlag"] == 2 and over["errorMessage"] == "Reached the limit for concurrent generations"
    runway_sim.configure(record_style="variant")
    assert api.aleph_record(failed)["successFlag"] == "3"


@pytest.mark.parametrize("style", ["body", "http"])
@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [("404", 404, "Not Found"), ("422", 422, "not available"), ("505", 505, "no longer available")],
)
def test_aleph_turned_off(runway_sim_factory, style: str, mode: str, code: int, words: str):
    sim = runway_sim_factory(error_style=style)
    api = Api(sim.url)
    earlier = api.aleph()
    sim.configure(aleph_mode=mode)
    refused = api.post(wire.ALEPH_GENERATE_PATH, {"prompt": "make it winter", "videoUrl": "https://example.com/in.mp4"})
    expected_status = code if mode == "404" or style == "http" else 200
    assert refused.status_code == expected_status
    assert refused.json()["code"] == code and words in refused.json()["msg"]
    status = api.get(wire.ALEPH_RECORD_INFO_PATH, params={"taskId": earlier})
    assert status.json()["code"] == code
    api.wait_runway(api.generate())  # Runway is still served
    counters = sim.counters()
    assert counters["tasks_total"] == 2 and sum(counters["tasks_created"].values()) == 2
    assert sim.account(KEY)["credits_spent"] == 60 + 60  # the earlier Aleph edit and the Runway video


def test_aleph_off_from_the_start_creates_nothing(runway_sim_factory):
    sim = runway_sim_factory(aleph_mode="505")
    body = Api(sim.url).post(wire.ALEPH_GENERATE_PATH, {"prompt": "x", "videoUrl": "https://h/v.mp4"}).json()
    assert body == {
        "code": 505,
        "msg": "Runway Aleph is discontinued and no longer available on Kie AI",
        "data": None,
    }
    assert sim.counters()["tasks_total"] == 0 and sim.counters()["requests"]["aleph-generate"] == 1


@STYLES
def test_extending_a_1080p_video_is_refused(runway_sim: SimulatorThread, api: Api):
    style = runway_sim.config()["error_style"]
    source = api.generate(quality="1080p", duration=5)
    api.wait_runway(source)
    refused = api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": source, "prompt": "more"})
    assert refused.status_code == (400 if style == "http" else 200)
    assert refused.json()["code"] == 400 and refused.json()["msg"] == "Video generated after 1080P cannot be extended"
    assert runway_sim.counters()["tasks_total"] == 1
    fine = api.generate()
    api.wait_runway(fine)
    assert api.data(api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": fine, "prompt": "more"}))["taskId"]


def test_tempfile_and_upload_requests_are_counted(runway_sim: SimulatorThread, api: Api):
    response = api.session.post(
        api.url + "/api/file-stream-upload", files={"file": ("a.png", b"x")}, data={"uploadPath": "a"}
    )
    url = response.json()["data"]["downloadUrl"]
    assert requests.get(url, timeout=10).content == b"x"
    assert runway_sim.counters()["requests"] == {"file-stream-upload": 1, "tempfile": 1}
