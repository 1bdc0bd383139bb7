"""Every fault kind of the control API, seen by a client over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.errors import (
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayUnavailableError,
)
from airflow_provider_runway.simulator import SimulatorError
from tests.integration.simulator.sim_helpers import Api

pytestmark = pytest.mark.integration


def status_of(api: Api, task_id: str) -> requests.Response:
    return api.get(wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": task_id})


def test_http500_for_the_next_n_requests_then_normal(runway_sim, api: Api):
    task_id = api.generate()
    runway_sim.inject_fault(endpoint="record-detail", kind="http500", count=2)
    for _ in range(2):
        failed = status_of(api, task_id)
        assert failed.status_code == 500 and failed.json()["code"] == 500
        with pytest.raises(RunwayUnavailableError):
            api.data(failed)
    assert status_of(api, task_id).status_code == 200
    assert runway_sim.counters()["faults_fired"] == {"http500": 2}
    assert runway_sim.faults() == []


def test_http455_maintenance(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="generate", kind="http455")
    refused = api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    assert refused.status_code == 455 and refused.json()["code"] == 455
    with pytest.raises(RunwayUnavailableError):
        api.data(refused)
    assert runway_sim.counters()["tasks_total"] == 0


def test_http429_sends_retry_after(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint=wire.CREDIT_PATH, kind="http429", retry_after=7)
    limited = api.get(wire.CREDIT_PATH)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    with pytest.raises(RunwayRateLimitedError) as err:
        api.data(limited)
    assert err.value.retry_after == 7


def test_malformed_json(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="credit", kind="malformed_json")
    broken = api.get(wire.CREDIT_PATH)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    with pytest.raises(RunwayProtocolError):
        api.data(broken)


def test_html_error_page(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="credit", kind="html_error")
    page = api.get(wire.CREDIT_PATH)
    assert page.status_code == 502 and page.headers["Content-Type"].startswith("text/html")
    assert "<html>" in page.text
    with pytest.raises(RunwayUnavailableError):
        api.data(page)


def test_slow_delays_then_answers(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="credit", kind="slow", delay=0.5)
    started = time.monotonic()
    assert api.data(api.get(wire.CREDIT_PATH)) == 10_000
    assert time.monotonic() - started >= 0.5
    with pytest.raises(requests.Timeout):
        runway_sim.inject_fault(endpoint="credit", kind="slow", delay=2)
        api.session.get(runway_sim.url + wire.CREDIT_PATH, timeout=0.3)


def test_drop_closes_the_connection_without_an_answer(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="generate", kind="drop")
    with pytest.raises(requests.ConnectionError):
        api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    assert runway_sim.counters()["tasks_total"] == 0


def test_drop_after_creates_the_task_but_loses_the_answer(runway_sim, api: Api):
    runway_sim.inject_fault(endpoint="generate", kind="drop_after")
    with pytest.raises(requests.ConnectionError):
        api.post(wire.RUNWAY_GENERATE_PATH, {"prompt": "x", "aspectRatio": "16:9"})
    counters = runway_sim.counters()
    assert counters["tasks_total"] == 1 and sum(counters["credits_spent"].values()) == 60


def test_fraction_of_requests(runway_sim, api: Api):
    task_id = api.generate()
    runway_sim.inject_fault(endpoint="record-detail", kind="http500", fraction=0.5)
    codes = [status_of(api, task_id).status_code for _ in range(60)]
    assert 10 < codes.count(500) < 50
    assert set(codes) == {200, 500}
    runway_sim.clear_faults()
    assert all(status_of(api, task_id).status_code == 200 for _ in range(5))


def test_faults_only_hit_their_endpoint_and_star_hits_all(runway_sim, api: Api):
    task_id = api.generate()
    runway_sim.inject_fault(endpoint="record-info", kind="http500", count=1)
    assert status_of(api, task_id).status_code == 200
    runway_sim.clear_faults()
    runway_sim.inject_fault(endpoint="*", kind="http500", count=2)
    assert api.get(wire.CREDIT_PATH).status_code == 500
    assert status_of(api, task_id).status_code == 500
    assert status_of(api, task_id).status_code == 200


def test_files_can_fail_too(runway_sim, api: Api):
    url = api.wait_runway(api.generate())["videoInfo"]["videoUrl"]
    runway_sim.inject_fault(endpoint="files", kind="http500")
    assert requests.get(url, timeout=10).status_code == 500
    assert requests.get(url, timeout=10).status_code == 200


def test_control_api_refuses_bad_fault_rules(runway_sim):
    with pytest.raises(SimulatorError, match="unknown fault kind"):
        runway_sim.inject_fault(endpoint="credit", kind="explode")
    with pytest.raises(SimulatorError, match="unknown endpoint"):
        runway_sim.inject_fault(endpoint="nowhere", kind="http500")
    with pytest.raises(SimulatorError, match="no such task"):
        runway_sim.fail_task("missing")
