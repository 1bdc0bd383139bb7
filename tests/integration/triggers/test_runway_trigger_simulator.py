"""RunwayTaskTrigger against the bundled simulator over real loopback HTTP, in both error styles. No mocks."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_runway.core.models import AlephRequest, GenerateRequest
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from tests.integration.hooks.conftest import API_KEY, use_simulator

pytestmark = pytest.mark.integration

PROMPT = "A lighthouse in a storm, slow dolly-in"


def create(family: str = "runway") -> str:
    hook = RunwayHook(retry_delay=0.01)
    if family == "aleph":
        return hook.create_task(AlephRequest(prompt="Make it snow", video_url="https://example.com/in.mp4"))
    return hook.create_task(GenerateRequest(prompt=PROMPT))


def run_trigger(**kwargs: Any) -> dict[str, Any]:
    """Run a trigger to its single event (in a fresh event loop, like the triggerer would)."""
    params: dict[str, Any] = {"poll_interval": 0.05, "retry_delay": 0.01, "end_time": time.time() + 20, **kwargs}
    trigger = RunwayTaskTrigger(**params)

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), timeout=30))
    assert len(events) == 1
    assert json.loads(json.dumps(events[0])) == events[0]
    assert API_KEY not in json.dumps(events[0])
    return events[0]


def reads(sim: Any, task_id: str) -> int:
    return int(sim.counters()["task_reads"].get(task_id, 0))


@pytest.mark.parametrize("family", ["runway", "aleph"])
def test_success(sim, family):
    task_id = create(family)
    event = run_trigger(task_id=task_id, family=family)
    assert event["status"] == "success", event
    assert event["task"]["video_url"] and event["task"]["state"] == "succeeded"
    assert (event["task_id"], event["family"]) == (task_id, family)


def test_remote_failure(sim):
    task_id = create()
    sim.fail_task(task_id, code=400, message="Reached the limit for concurrent generations", immediate=False)
    event = run_trigger(task_id=task_id)
    assert event["status"] == "failed"
    assert "Reached the limit for concurrent generations" in event["message"] and "400" in event["message"]


def test_timeout(sim):
    sim.pause()
    task_id = create()
    try:
        event = run_trigger(task_id=task_id, end_time=time.time() + 0.6)
    finally:
        sim.resume()
    assert event["status"] == "timeout"
    assert task_id in event["message"] and "waited" in event["message"]
    assert event["task"]["state"] == "running"


def test_transient_faults_do_not_end_the_wait(sim):
    task_id = create()
    for kind in ("http500", "http455", "malformed_json", "html_error", "drop"):
        sim.inject_fault(endpoint="record-detail", kind=kind, count=1)
    sim.inject_fault(endpoint="record-detail", kind="http429", count=1, retry_after=0.1)
    event = run_trigger(task_id=task_id, retry_limit=0, max_consecutive_errors=10)
    assert event["status"] == "success", event
    assert sim.counters()["faults_fired"] == {
        "http500": 1,
        "http455": 1,
        "malformed_json": 1,
        "html_error": 1,
        "drop": 1,
        "http429": 1,
    }


def test_persistent_outage_ends_with_error(sim):
    task_id = create()
    sim.inject_fault(endpoint="record-detail", kind="http500", count=100)
    event = run_trigger(task_id=task_id, retry_limit=0, max_consecutive_errors=3)
    assert event["status"] == "error" and "3 consecutive" in event["message"]
    assert reads(sim, task_id) <= 3


def test_expired_result(sim):
    sim.configure(retention_seconds=0.05)
    task_id = create()
    sim.wait_for(task_id, "success")
    time.sleep(0.2)  # past the (scaled) retention: expireFlag is now 1
    event = run_trigger(task_id=task_id)
    assert event["status"] == "failed" and "expired" in event["message"]


def test_wrong_key_is_an_error(sim):
    task_id = create()
    sim.configure(api_keys=["someone-else-0123456789"])
    event = run_trigger(task_id=task_id)
    assert event["status"] == "error" and "401" in event["message"]


def test_unknown_task_errors_after_grace(sim, monkeypatch):
    from airflow_provider_runway.core import wait as wait_module

    monkeypatch.setattr(wait_module, "NOT_FOUND_GRACE_SECONDS", 0.3)
    started = time.monotonic()
    event = run_trigger(task_id="never-created")
    assert event["status"] == "error" and "not found" in event["message"]
    assert time.monotonic() - started >= 0.3
    assert sim.counters()["requests"]["record-detail"] >= 2  # retried during the grace period


def test_two_triggers_on_one_task(sim):
    task_id = create()

    async def both() -> list[dict[str, Any]]:
        triggers = [RunwayTaskTrigger(task_id=task_id, poll_interval=0.05, end_time=time.time() + 20) for _ in range(2)]

        async def first(trigger: RunwayTaskTrigger) -> dict[str, Any]:
            return (await trigger.run().__anext__()).payload

        return list(await asyncio.gather(*(first(t) for t in triggers)))

    events = asyncio.run(both())
    assert [e["status"] for e in events] == ["success", "success"]
    assert sum(sim.counters()["tasks_created"].values()) == 1


def test_many_concurrent_waits(runway_sim_factory, monkeypatch):
    sim = runway_sim_factory(generating_seconds=0.5, rate_limit_creates=0)
    use_simulator(monkeypatch, sim.url)
    task_ids = [create() for _ in range(50)]

    async def all_waits() -> list[str]:
        triggers = [RunwayTaskTrigger(task_id=t, poll_interval=0.1, end_time=time.time() + 30) for t in task_ids]

        async def first(trigger: RunwayTaskTrigger) -> str:
            return str((await trigger.run().__anext__()).payload["status"])

        return list(await asyncio.gather(*(first(t) for t in triggers)))

    assert asyncio.run(all_waits()) == ["success"] * 50
