"""Every KIE endpoint of the simulator over real loopback HTTP, in both error styles."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
import requests

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayRequestRejectedError,
)
from airflow_provider_runway.core.results import TaskStatus, parse_aleph_record, parse_runway_record
from airflow_provider_runway.simulator import SimulatorConfig, SimulatorThread, account_label
from airflow_provider_runway.simulator.media import mp4_bytes, png_bytes
from tests.integration.simulator.sim_helpers import KEY, Api

pytestmark = pytest.mark.integration

STYLES = pytest.mark.parametrize("runway_sim", ["body", "http"], indirect=True)


def expect_error(response: requests.Response, code: int, style: str) -> dict:
    """The error arrives as the configured style says, with a JSON envelope."""
    assert response.status_code == (code if style == "http" else 200)
    body = response.json()
    assert body["code"] == code and body["msg"] and body["data"] is None
    return body


@STYLES
def test_generate_poll_until_success_then_fetch_files(runway_sim: SimulatorThread, api: Api):
    task_id = api.generate(callBackUrl=None)
    first = api.record(task_id)
    assert first["state"] in ("wait", "queueing")
    assert first["videoInfo"] is None and first["failCode"] is None and first["failMsg"] == ""
    assert first["generateTime"] == ""  # KIE documents it as the completion time
    assert first["generateParam"]["prompt"] == "a red fox in the snow"
    record = api.wait_runway(task_id)
    assert record["state"] == "success"
    assert record["expireFlag"] == 0 and record["parentTaskId"] == ""
    completed = datetime.fromtimestamp(runway_sim.task_info(task_id)["completes_at"], tz=timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["generateTime"])
    assert record["generateTime"] == completed.strftime("%Y-%m-%d %H:%M:%S")
    info = record["videoInfo"]
    assert info["taskId"] == task_id and info["videoId"]
    assert info["videoUrl"] == f"{runway_sim.url}/files/{task_id}.mp4"
    task = parse_runway_record(record)
    assert task.status is TaskStatus.SUCCEEDED and task.video_url == info["videoUrl"]
    video = requests.get(info["videoUrl"], timeout=10)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    assert video.content == mp4_bytes(5)
    image = requests.get(info["imageUrl"], timeout=10)
    assert image.headers["Content-Type"] == "image/png" and image.content == png_bytes()


def test_states_pass_through_every_phase(runway_sim_factory):
    sim = runway_sim_factory(wait_seconds=0.3, queueing_seconds=0.3, generating_seconds=0.3)
    api = Api(sim.url)
    task_id = api.generate()
    seen: list[str] = []
    while not seen or seen[-1] != "success":
        state = api.record(task_id)["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.02)
    assert seen == ["wait", "queueing", "generating", "success"]


def test_ten_second_video_is_longer(runway_sim, api: Api):
    task_id = api.generate(duration=10)
    url = api.wait_runway(task_id)["videoInfo"]["videoUrl"]
    assert requests.get(url, timeout=10).content == mp4_bytes(10)


def test_image_to_video_keeps_the_image(runway_sim, api: Api):
    task_id = api.generate(imageUrl="https://example.com/cat.png", aspectRatio=None)
    assert api.record(task_id)["generateParam"]["imageUrl"] == "https://example.com/cat.png"


@STYLES
def test_extend_a_finished_video(runway_sim, api: Api):
    source = api.generate(aspectRatio="9:16")
    api.wait_runway(source)
    body = {"taskId": source, "prompt": "the fox runs away", "quality": "720p"}
    extension = api.data(api.post(wire.RUNWAY_EXTEND_PATH, body))["taskId"]
    record = api.wait_runway(extension)
    assert record["state"] == "success" and record["parentTaskId"] == source
    assert parse_runway_record(record).parent_task_id == source
    assert runway_sim.task_info(extension)["kind"] == "extend"


@STYLES
def test_extend_refuses_unknown_and_unfinished_sources(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    unknown = api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": "no-such-task", "prompt": "more"})
    assert "not found" in expect_error(unknown, 404, style)["msg"]
    running = api.generate()
    unfinished = api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": running, "prompt": "more"})
    assert "successfully finished" in expect_error(unfinished, 422, style)["msg"]
    failed = api.generate()
    runway_sim.fail_task(failed)
    assert expect_error(api.post(wire.RUNWAY_EXTEND_PATH, {"taskId": failed, "prompt": "x"}), 422, style)
    missing = api.post(wire.RUNWAY_EXTEND_PATH, {"prompt": "more"})
    assert "Invalid taskId=" in expect_error(missing, 422, style)["msg"]
    assert "source_task_id" not in missing.json()["msg"]


@STYLES
def test_aleph_generate_and_record_info(runway_sim, api: Api):
    task_id = api.aleph(aspectRatio="21:9", seed=12345)
    pending = api.aleph_record(task_id)
    assert pending["response"] is None
    assert (pending["successFlag"], pending["errorCode"], pending["errorMessage"]) == (0, 0, "")
    assert pending["completeTime"] is None and pending["createTime"].endswith("Z")
    assert '"prompt": "make it winter"' in pending["paramJson"]
    assert parse_aleph_record(pending).status is TaskStatus.PENDING
    done = api.wait_aleph(task_id)
    assert done["successFlag"] == 1 and done["completeTime"].endswith("Z")
    assert done["response"]["resultVideoUrl"] == f"{runway_sim.url}/files/{task_id}.mp4"
    task = parse_aleph_record(done)
    assert task.status is TaskStatus.SUCCEEDED and task.image_url == done["response"]["resultImageUrl"]
    assert requests.get(task.video_url, timeout=10).status_code == 200


@STYLES
def test_families_do_not_mix(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    runway_id, aleph_id = api.generate(), api.aleph()
    assert expect_error(api.get(wire.ALEPH_RECORD_INFO_PATH, params={"taskId": runway_id}), 404, style)
    assert expect_error(api.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": aleph_id}), 404, style)


@STYLES
def test_forced_failure_shows_in_both_shapes(runway_sim, api: Api):
    runway_id, aleph_id = api.generate(), api.aleph()
    runway_sim.fail_task(runway_id, code=400, message="Inappropriate content detected")
    runway_sim.fail_task(aleph_id, code=501, message="Generation failed")
    record = api.record(runway_id)
    assert (record["state"], record["failCode"], record["failMsg"]) == ("fail", 400, "Inappropriate content detected")
    assert record["videoInfo"] is None
    failed = parse_runway_record(record)
    assert failed.status is TaskStatus.FAILED and failed.fail_message == "Inappropriate content detected"
    aleph = api.aleph_record(aleph_id)
    assert (aleph["successFlag"], aleph["errorCode"], aleph["errorMessage"]) == (0, 501, "Generation failed")
    assert parse_aleph_record(aleph).status is TaskStatus.FAILED


def test_fail_task_at_completion_time(runway_sim, api: Api):
    task_id = api.generate()
    runway_sim.fail_task(task_id, code=500, message="late", immediate=False)
    assert api.record(task_id)["state"] != "fail"
    assert api.wait_runway(task_id)["failMsg"] == "late"


@STYLES
def test_credit_endpoint_reports_the_balance(runway_sim, api: Api):
    assert api.data(api.get(wire.CREDIT_PATH)) == 10_000
    api.generate(duration=10)
    api.generate(quality="1080p")
    api.aleph()
    assert api.data(api.get(wire.CREDIT_PATH)) == 10_000 - 120 - 70 - 60
    assert runway_sim.account(KEY)["credits_spent"] == 250


@STYLES
def test_insufficient_credits_is_402(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    runway_sim.set_credits(KEY, 50)
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    expect_error(refused, 402, style)
    with pytest.raises(RunwayInsufficientCreditsError):
        api.data(refused)
    assert runway_sim.counters()["tasks_total"] == 0


@STYLES
def test_missing_or_unknown_key_is_401(runway_sim_factory, runway_sim):
    style = runway_sim.config()["error_style"]
    restricted = runway_sim_factory(api_keys=("only-this",), error_style=style)
    for url in (runway_sim.url, restricted.url):
        bare = requests.get(url + wire.CREDIT_PATH, timeout=10)
        expect_error(bare, 401, style)
        with pytest.raises(RunwayAuthError):
            Api.data(bare)
    expect_error(Api(restricted.url, key="wrong").get(wire.CREDIT_PATH), 401, style)
    assert Api(restricted.url, key="only-this").data(Api(restricted.url, key="only-this").get(wire.CREDIT_PATH))
    assert Api(runway_sim.url, key="anything").data(Api(runway_sim.url, key="anything").get(wire.CREDIT_PATH))


@STYLES
def test_concurrency_limit(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    runway_sim.configure(concurrency_limit=2, concurrency_mode="refuse")
    first = api.generate()
    api.generate()
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    assert "Reached the limit for concurrent generations" in expect_error(refused, 400, style)["msg"]
    with pytest.raises(RunwayRequestRejectedError):
        api.data(refused)
    Api(runway_sim.url, key="another-key").generate()  # per key
    api.wait_runway(first)
    api.wait_runway(api.generate())  # room again once the first ones finished


def test_concurrency_limit_as_429(runway_sim, api: Api):
    runway_sim.configure(concurrency_limit=1, concurrency_error_code=429, error_style="http", concurrency_mode="refuse")
    api.generate()
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    assert refused.status_code == 429 and refused.json()["code"] == 429


def test_expiry_sets_the_flag_and_removes_files(runway_sim, api: Api):
    task_id = api.generate()
    record = api.wait_runway(task_id)
    link = api.data(api.post(wire.DOWNLOAD_URL_PATH, {"url": record["videoInfo"]["videoUrl"]}))
    runway_sim.configure(retention_seconds=0)
    expired = api.record(task_id)
    assert expired["expireFlag"] == 1
    assert parse_runway_record(expired).expired
    for url in (record["videoInfo"]["videoUrl"], record["videoInfo"]["imageUrl"], link):
        gone = requests.get(url, timeout=10)
        assert gone.status_code == 410 and gone.json()["code"] == 410
    refused = api.post(wire.DOWNLOAD_URL_PATH, {"url": record["videoInfo"]["videoUrl"]})
    assert refused.json()["code"] == 404 and "expired" in refused.json()["msg"]


def test_download_url_gives_a_signed_link_that_expires(runway_sim, api: Api):
    task_id = api.generate()
    video_url = api.wait_runway(task_id)["videoInfo"]["videoUrl"]
    link = api.data(api.post(wire.DOWNLOAD_URL_PATH, {"url": video_url}))
    assert link.startswith(f"{runway_sim.url}/files/{task_id}.mp4?token=")
    expires = int(re.search(r"expires=(\d+)", link).group(1))
    assert 1195 <= expires - time.time() <= 1202  # 20 minutes
    assert requests.get(link, timeout=10).content == mp4_bytes(5)
    tampered = requests.get(link.replace("token=", "token=0"), timeout=10)
    assert tampered.status_code == 403
    runway_sim.configure(download_link_ttl=0)
    short = api.data(api.post(wire.DOWNLOAD_URL_PATH, {"url": video_url}))
    time.sleep(max(0.0, int(re.search(r"expires=(\d+)", short).group(1)) - time.time() + 0.05))
    late = requests.get(short, timeout=10)
    assert late.status_code == 403 and "expired" in late.json()["msg"]


@STYLES
def test_download_url_refuses_foreign_and_unknown_files(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    expect_error(api.post(wire.DOWNLOAD_URL_PATH, {"url": "https://example.com/x.mp4"}), 422, style)
    expect_error(api.post(wire.DOWNLOAD_URL_PATH, {}), 422, style)
    unknown = f"{runway_sim.url}/files/00000000-0000-4000-8000-000000000000.mp4"
    expect_error(api.post(wire.DOWNLOAD_URL_PATH, {"url": unknown}), 404, style)
    running = api.generate()
    expect_error(api.post(wire.DOWNLOAD_URL_PATH, {"url": f"{runway_sim.url}/files/{running}.mp4"}), 404, style)


def test_files_support_range_and_head(runway_sim_factory):
    sim = runway_sim_factory(video_size_bytes=3_000_000)
    api = Api(sim.url)
    url = api.wait_runway(api.generate())["videoInfo"]["videoUrl"]
    full = requests.get(url, timeout=10)
    assert len(full.content) == 3_000_000 and full.headers["Accept-Ranges"] == "bytes"
    part = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == full.content[1000:2000]
    assert part.headers["Content-Range"] == "bytes 1000-1999/3000000"
    tail = requests.get(url, headers={"Range": "bytes=2999990-"}, timeout=10)
    assert tail.content == full.content[-10:]
    beyond = requests.get(url, headers={"Range": "bytes=4000000-"}, timeout=10)
    assert beyond.status_code == 416
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == "3000000"


def test_files_of_unknown_or_unfinished_tasks_are_404(runway_sim, api: Api):
    runway_sim.pause()  # held in generating: a 0.3 s generation could end during the reads on a loaded machine
    running = api.generate()
    for name in (f"{running}.mp4", "nope.mp4", f"{running}.gif", "../../etc/passwd"):
        response = requests.get(f"{runway_sim.url}/files/{name}", timeout=10)
        assert response.status_code == 404 and response.json()["code"] == 404


@STYLES
def test_bad_input_gets_json_errors(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    url = runway_sim.url + wire.RUNWAY_GENERATE_PATH
    malformed = api.session.post(url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert "Malformed JSON" in expect_error(malformed, 400, style)["msg"]
    wrong_type = api.session.post(url, data=b'{"prompt": "x"}', headers={"Content-Type": "text/plain"}, timeout=10)
    assert "Content-Type" in expect_error(wrong_type, 400, style)["msg"]
    assert expect_error(api.post(wire.RUNWAY_GENERATE_PATH, ["a", "list"]), 400, style)
    missing = api.post(wire.RUNWAY_GENERATE_PATH, {"aspectRatio": "16:9"})
    assert "prompt" in expect_error(missing, 422, style)["msg"]
    combo = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "duration": 10, "quality": "1080p"})
    assert "quality" in expect_error(combo, 422, style)["msg"]
    long_prompt = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x" * 1801, "aspectRatio": "16:9"})
    assert "1800" in expect_error(long_prompt, 422, style)["msg"]
    odd_types = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": {"a": 1}, "duration": [5]})
    assert expect_error(odd_types, 422, style)
    no_video = api.post(wire.ALEPH_GENERATE_PATH, {"prompt": "x"})
    assert "Invalid videoUrl=" in expect_error(no_video, 422, style)["msg"]
    bad_ratio = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "2:1"})
    message = expect_error(bad_ratio, 422, style)["msg"]
    assert "Invalid aspectRatio='2:1'" in message and "aspect_ratio" not in message
    bad_image = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "imageUrl": "ftp://host/a.png"})
    assert "Invalid imageUrl=" in expect_error(bad_image, 422, style)["msg"]
    bad_reference = api.post(
        wire.ALEPH_GENERATE_PATH, {"prompt": "x", "videoUrl": "https://h/v.mp4", "referenceImage": "x"}
    )
    assert "Invalid referenceImage=" in expect_error(bad_reference, 422, style)["msg"]
    no_id = api.get(wire.RUNWAY_RECORD_DETAIL_PATH)
    assert "taskId" in expect_error(no_id, 422, style)["msg"]
    unknown = api.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": "x" * 5000})
    assert len(expect_error(unknown, 404, style)["msg"]) < 200
    assert runway_sim.counters()["tasks_total"] == 0


def test_tasks_of_another_key_are_not_found(runway_sim, api: Api):
    task_id = api.generate()
    with pytest.raises(RunwayNotFoundError):
        Api(runway_sim.url, key="someone-else").record(task_id)


def test_transport_errors_are_json_whatever_the_style(runway_sim, api: Api):
    too_big = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x" * (2 * 1024 * 1024)})
    assert too_big.status_code == 413 and too_big.json()["code"] == 413
    unknown = api.get("/api/v1/runway/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["code"] == 404
    wrong_method = api.get(wire.RUNWAY_GENERATE_PATH)
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == 405
    assert requests.get(runway_sim.url + "/_sim/health", timeout=10).json()["ok"] is True


def test_counters_count_requests_tasks_and_credits(runway_sim, api: Api):
    task_id = api.generate()
    for _ in range(3):
        api.record(task_id)
    api.get(wire.CREDIT_PATH)
    counters = runway_sim.counters()
    assert counters["requests"] == {"generate": 1, "record-detail": 3, "credit": 1}
    assert counters["task_reads"] == {task_id: 3}
    assert counters["tasks_created"] == {account_label(KEY): 1}
    assert counters["credits_spent"] == {account_label(KEY): 60}
    assert KEY not in str(counters)
    runway_sim.reset()
    assert runway_sim.counters()["requests_total"] == 0


def test_pause_holds_tasks_in_generating_until_resume(runway_sim, api: Api):
    runway_sim.pause()
    task_id = api.generate()
    runway_sim.wait_for(task_id, "generating")
    time.sleep(0.4)  # well past its normal completion
    assert api.record(task_id)["state"] == "generating"
    assert runway_sim.task_info(task_id)["held"] is True
    assert runway_sim.resume() == 1
    assert api.record(task_id)["state"] == "success"
    assert runway_sim.task_info(task_id)["completes_at"] <= time.time()


def test_configure_switches_error_style_at_runtime(runway_sim, api: Api):
    assert api.get(wire.CREDIT_PATH, headers={"Authorization": ""}).status_code == 200
    runway_sim.configure(error_style="http")
    assert api.get(wire.CREDIT_PATH, headers={"Authorization": ""}).status_code == 401
    with pytest.raises(Exception, match="error_style"):
        runway_sim.configure(error_style="xml")


def test_marker_configures_the_fixture(runway_sim):
    assert runway_sim.config()["error_style"] == "body"
    assert runway_sim.config()["concurrency_limit"] == 0


@pytest.mark.runway_sim(error_style="http", starting_credits=5)
def test_runway_sim_marker(runway_sim):
    config = runway_sim.config()
    assert config["error_style"] == "http" and config["starting_credits"] == 5


def test_variant_record_style_uses_the_shapes_some_clients_see(runway_sim, api: Api):
    runway_sim.configure(record_style="variant")
    done, failed, aleph = api.generate(), api.generate(), api.aleph()
    runway_sim.fail_task(failed, code=400, message="nope")
    assert api.aleph_record(aleph)["errorCode"] is None
    assert parse_aleph_record(api.aleph_record(aleph)).status is TaskStatus.PENDING
    runway_sim.wait_for(done, "success")
    record = api.record(done)
    assert "state" not in record and "videoInfo" not in record
    assert record["status"] == "success" and record["videoUrl"].endswith(f"/files/{done}.mp4")
    assert record["failCode"] == ""
    assert parse_runway_record(record).status is TaskStatus.SUCCEEDED
    bad = api.record(failed)
    assert (bad["status"], bad["failCode"], bad["videoUrl"]) == ("fail", "400", "")
    assert parse_runway_record(bad).fail_code == "400"


def test_an_internal_error_is_a_json_500_not_a_traceback(runway_sim, api: Api):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    runway_sim.simulator.engine.find = broken
    response = api.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": "x"})
    assert response.status_code == 500
    assert response.json() == {"code": 500, "msg": "Internal simulator error", "data": None}
    assert "Traceback" not in response.text


def test_factory_accepts_a_full_config(runway_sim_factory):
    sim = runway_sim_factory(SimulatorConfig(starting_credits=7), error_style="http")
    assert Api(sim.url).data(Api(sim.url).get(wire.CREDIT_PATH)) == 7
    assert sim.config()["error_style"] == "http"


@STYLES
def test_unfetchable_inputs_are_451(runway_sim, api: Api):
    style = runway_sim.config()["error_style"]
    image = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "imageUrl": "https://cdn.invalid/cat.png"})
    assert "input image" in expect_error(image, 451, style)["msg"]
    with pytest.raises(RunwayRequestRejectedError):
        api.data(image)
    video = api.post(wire.ALEPH_GENERATE_PATH, {"prompt": "x", "videoUrl": "https://media.invalid/in.mp4"})
    assert "input video" in expect_error(video, 451, style)["msg"]
    assert runway_sim.counters()["tasks_total"] == 0
