"""Unit tests of RunwayTaskTrigger: the hook is faked, or HTTP is mocked with aioresponses."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_runway.core import wait as wait_module
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayTransportError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.core.wait import MAX_CONSECUTIVE_READ_ERRORS
from airflow_provider_runway.triggers import runway as trigger_module
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from tests.unit.hooks.aiohttp_compat import mock_aiohttp

API_KEY = "sk-kie-TRIGGER-TEST-SECRET-0123456789"
BASE = "http://runway.test"
CLASSPATH = "airflow_provider_runway.triggers.runway.RunwayTaskTrigger"


def task(status: TaskStatus, **fields: object) -> RunwayTask:
    return RunwayTask(task_id="t-1", family=TaskFamily.RUNWAY, status=status, **fields)  # type: ignore[arg-type]


PENDING = task(TaskStatus.PENDING, raw_state="queueing")
RUNNING = task(TaskStatus.RUNNING, raw_state="generating")
SUCCESS = task(TaskStatus.SUCCEEDED, raw_state="success", video_url="https://cdn.test/v.mp4")


HANG = Exception("hang")


class FakeHook:
    """Answers aget_task from a script; the last entry repeats. Counts polls and context entries."""

    def __init__(self, *script: RunwayTask | Exception) -> None:
        self.script = list(script)
        self.polls = 0
        self.entered = 0
        self.exited = 0

    async def __aenter__(self) -> FakeHook:
        self.entered += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited += 1

    async def aget_task(self, task_id: str, family: str = "runway") -> RunwayTask:
        assert (task_id, family) == ("t-1", "runway")
        self.polls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if item is HANG:  # like a hook still honouring a long Retry-After
            await asyncio.sleep(3600)
        if isinstance(item, Exception):
            raise item
        return item


def make_trigger(monkeypatch: pytest.MonkeyPatch, hook: FakeHook, **kwargs: object) -> RunwayTaskTrigger:
    params: dict = {"task_id": "t-1", "poll_interval": 0.01, "retry_delay": 0.0, **kwargs}
    trigger = RunwayTaskTrigger(**params)
    monkeypatch.setattr(trigger, "_hook", lambda: hook)
    return trigger


async def events(trigger: RunwayTaskTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


async def only_event(trigger: RunwayTaskTrigger) -> dict:
    produced = await asyncio.wait_for(events(trigger), timeout=10)
    assert len(produced) == 1
    payload = produced[0].payload
    assert json.loads(json.dumps(payload)) == payload  # plain JSON
    assert set(payload) == {"status", "task_id", "family", "task", "message", "retryable"}
    return payload


# --------------------------------------------------------------------------- serialisation


class TestSerialize:
    def test_round_trip(self):
        trigger = RunwayTaskTrigger(
            task_id="t-1",
            family="aleph",
            runway_conn_id="my_runway",
            poll_interval=2.5,
            end_time=1_900_000_000.5,
            retry_limit=2,
            retry_delay=0.5,
            max_consecutive_errors=4,
            first_poll_delay=3,
            deadline_source="execution_timeout of 60 s",
            wait_state={"started_at": 1_899_999_990.0, "seen": False, "errors": 1},
            expected_duration=95,
            duration=10,
            quality="1080p",
            end_in_triggerer=True,
            multiple_outputs=False,
            do_xcom_push=False,
            resume_record="runway_provider_resume:d:r:t:-1:runway_task_id",
        )
        classpath, kwargs = trigger.serialize()
        assert classpath == CLASSPATH
        assert kwargs == {
            "task_id": "t-1",
            "family": "aleph",
            "runway_conn_id": "my_runway",
            "poll_interval": 2.5,
            "end_time": 1_900_000_000.5,
            "deadline_source": "execution_timeout of 60 s",
            "wait_state": {
                "started_at": 1_899_999_990.0,
                "seen": False,
                "errors": 1,
                "last_state": None,
                "last_log": None,
                "last_read_at": None,
            },
            "http_retry": {"limit": 2, "delay": 0.5, "max_consecutive_errors": 4},
            "schedule": {"first_poll_delay": 3.0, "expected_duration": 95.0, "duration": 10, "quality": "1080p"},
            "task_end": {
                "multiple_outputs": False,
                "do_xcom_push": False,
                "resume_record": "runway_provider_resume:d:r:t:-1:runway_task_id",
            },
        }
        assert len(kwargs) <= 10  # what a wait needs; ending the task travels as one value
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert RunwayTaskTrigger(**kwargs).serialize() == (classpath, kwargs)

    def test_round_trip_through_airflows_trigger_table(self):
        from importlib import import_module

        from airflow.models.trigger import Trigger

        trigger = RunwayTaskTrigger(task_id="t-1", family="aleph", end_time=1_900_000_000.0, first_poll_delay=2)
        row = Trigger.from_object(trigger)
        module, _, name = row.classpath.rpartition(".")
        rebuilt = getattr(import_module(module), name)(**row.kwargs)
        assert rebuilt.serialize() == trigger.serialize()

    def test_older_kwargs_still_load(self):
        old = {"task_id": "t-1", "family": "runway", "runway_conn_id": "runway_default", "poll_interval": 5.0}
        _, kwargs = RunwayTaskTrigger(**old).serialize()
        assert kwargs["end_time"] is None and kwargs["schedule"]["first_poll_delay"] == 0
        assert kwargs["http_retry"]["max_consecutive_errors"] == MAX_CONSECUTIVE_READ_ERRORS
        assert kwargs["task_end"] is None and kwargs["schedule"]["expected_duration"] is None

    def test_the_flat_kwargs_of_the_previous_version_still_load(self):
        """A trigger row written before the grouped values: same wait, same task end."""
        flat = {
            "task_id": "t-1",
            "retry_limit": 2,
            "retry_delay": 0.5,
            "max_consecutive_errors": 4,
            "first_poll_delay": 3.0,
            "expected_duration": 95.0,
            "duration": 10,
            "quality": "1080p",
            "end_in_triggerer": True,
            "multiple_outputs": False,
            "do_xcom_push": False,
            "resume_record": "rec",
        }
        _, kwargs = RunwayTaskTrigger(**flat).serialize()  # type: ignore[arg-type]
        assert kwargs["http_retry"] == {"limit": 2, "delay": 0.5, "max_consecutive_errors": 4}
        assert kwargs["schedule"] == {
            "first_poll_delay": 3.0,
            "expected_duration": 95.0,
            "duration": 10,
            "quality": "1080p",
        }
        assert kwargs["task_end"] == {"multiple_outputs": False, "do_xcom_push": False, "resume_record": "rec"}

    def test_family_enum_serialises_as_text(self):
        _, kwargs = RunwayTaskTrigger(task_id="t-1", family=TaskFamily.ALEPH).serialize()
        assert kwargs["family"] == "aleph" and type(kwargs["family"]) is str

    def test_runway_task_id_survives_the_triggerer_attaching_a_task_instance(self):
        trigger = RunwayTaskTrigger(task_id="t-1")

        class TI:
            task_id = "airflow_task"

        trigger.task_instance = TI()  # type: ignore[assignment]
        assert trigger.serialize()[1]["task_id"] == "t-1"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"family": "sora"}, "family"),
            ({"poll_interval": 0}, "poll_interval"),
            ({"max_consecutive_errors": 0}, "max"),
        ],
    )
    def test_invalid_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            RunwayTaskTrigger(task_id="t-1", **kwargs)


# --------------------------------------------------------------------------- paths


@pytest.mark.asyncio
async def test_pending_task_keeps_waiting(monkeypatch):
    hook = FakeHook(PENDING)
    trigger = make_trigger(monkeypatch, hook)
    pending = asyncio.ensure_future(trigger.run().__anext__())
    await asyncio.sleep(0.2)
    assert not pending.done()
    assert hook.polls >= 2 and hook.entered == 1
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert hook.exited == 1


@pytest.mark.asyncio
async def test_success(monkeypatch):
    hook = FakeHook(PENDING, RUNNING, SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook))
    assert event["status"] == "success"
    assert (event["task_id"], event["family"]) == ("t-1", "runway")
    assert event["task"] == SUCCESS.to_dict()
    assert "https://cdn.test/v.mp4" in event["message"]
    assert hook.polls == 3 and (hook.entered, hook.exited) == (1, 1)


@pytest.mark.asyncio
async def test_remote_failure(monkeypatch):
    failed = task(TaskStatus.FAILED, raw_state="fail", fail_code="400", fail_message="Inappropriate content detected")
    event = await only_event(make_trigger(monkeypatch, FakeHook(RUNNING, failed)))
    assert event["status"] == "failed"
    assert "400" in event["message"] and "Inappropriate content detected" in event["message"]
    assert event["task"]["fail_message"] == "Inappropriate content detected"


@pytest.mark.asyncio
async def test_expired_result_is_a_failure(monkeypatch):
    expired = task(TaskStatus.SUCCEEDED, raw_state="success", video_url="https://cdn.test/v.mp4", expired=True)
    event = await only_event(make_trigger(monkeypatch, FakeHook(expired)))
    assert event["status"] == "failed"
    assert "expired" in event["message"]
    assert event["task"]["expired"] is True


@pytest.mark.asyncio
async def test_timeout(monkeypatch):
    hook = FakeHook(RUNNING)
    event = await only_event(make_trigger(monkeypatch, hook, end_time=time.time() + 0.1))
    assert event["status"] == "timeout"
    assert re.search(r"t-1 did not finish before the deadline .*: waited \d+\.\d s", event["message"])
    assert event["task"]["state"] == "running"


@pytest.mark.asyncio
async def test_a_read_still_retrying_at_the_deadline_ends_in_timeout(monkeypatch):
    monkeypatch.setattr(trigger_module, "DEADLINE_READ_GRACE", 0.05)
    hook = FakeHook(RUNNING, HANG)
    event = await only_event(make_trigger(monkeypatch, hook, end_time=time.time() + 0.1))
    assert event["status"] == "timeout" and event["task"]["state"] == "running"
    assert (hook.entered, hook.exited) == (1, 1)


@pytest.mark.asyncio
async def test_past_deadline_still_polls_once(monkeypatch):
    hook = FakeHook(SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook, end_time=time.time() - 100))
    assert event["status"] == "success" and hook.polls == 1


@pytest.mark.asyncio
async def test_past_deadline_and_not_done_is_a_timeout(monkeypatch):
    hook = FakeHook(PENDING)
    event = await only_event(make_trigger(monkeypatch, hook, end_time=time.time() - 100, first_poll_delay=50))
    assert event["status"] == "timeout" and hook.polls == 1


@pytest.mark.asyncio
async def test_transient_errors_then_success(monkeypatch):
    hook = FakeHook(
        RunwayRateLimitedError("slow down", code=429, retry_after=None),
        RunwayUnavailableError("maintenance", code=455),
        RunwayUnavailableError("oops", code=500),
        RunwayTransportError("read timeout", request_sent=True),
        RunwayProtocolError("not JSON"),
        SUCCESS,
    )
    event = await only_event(make_trigger(monkeypatch, hook, max_consecutive_errors=6))
    assert event["status"] == "success" and hook.polls == 6


@pytest.mark.asyncio
async def test_error_streak_resets_after_a_good_read(monkeypatch):
    boom = RunwayUnavailableError("oops", code=500)
    hook = FakeHook(boom, boom, RUNNING, boom, boom, SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook, max_consecutive_errors=3))
    assert event["status"] == "success"


@pytest.mark.asyncio
async def test_too_many_consecutive_errors(monkeypatch):
    hook = FakeHook(RUNNING, RunwayUnavailableError("still down", code=503))
    event = await only_event(make_trigger(monkeypatch, hook, max_consecutive_errors=3))
    assert event["status"] == "error"
    assert "3 consecutive" in event["message"] and "still down" in event["message"]
    assert event["task"]["state"] == "running"  # the last state seen is kept
    assert hook.polls == 4


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error",
    [RunwayAuthError("Invalid API key", code=401), RunwayInsufficientCreditsError("no credits", code=402)],
)
async def test_non_retryable_error_ends_at_once(monkeypatch, error):
    hook = FakeHook(error, SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook))
    assert event["status"] == "error" and error.remote_message in event["message"]
    assert hook.polls == 1


@pytest.mark.asyncio
async def test_not_found_right_after_create_is_retried(monkeypatch):
    missing = RunwayNotFoundError("task not found", code=404)
    hook = FakeHook(missing, missing, RUNNING, SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook))
    assert event["status"] == "success" and hook.polls == 4


@pytest.mark.asyncio
async def test_not_found_after_the_grace_period_is_an_error(monkeypatch):
    monkeypatch.setattr(wait_module, "NOT_FOUND_GRACE_SECONDS", 0.0)
    event = await only_event(make_trigger(monkeypatch, FakeHook(RunwayNotFoundError("task not found", code=404))))
    assert event["status"] == "error" and "not found" in event["message"]


@pytest.mark.asyncio
async def test_not_found_once_seen_is_an_error(monkeypatch):
    hook = FakeHook(RUNNING, RunwayNotFoundError("task not found", code=404), SUCCESS)
    event = await only_event(make_trigger(monkeypatch, hook))
    assert event["status"] == "error" and hook.polls == 2


@pytest.mark.asyncio
async def test_poll_schedule_and_retry_after(monkeypatch):
    slept: list[float] = []

    async def record(self, seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(trigger_module._Wait, "sleep", record)
    hook = FakeHook(RUNNING, RunwayRateLimitedError("slow", code=429, retry_after=12), RUNNING, SUCCESS)
    trigger = make_trigger(monkeypatch, hook, poll_interval=5, first_poll_delay=20, retry_delay=1)
    event = await only_event(trigger)
    assert event["status"] == "success"
    assert slept[0] == pytest.approx(20, abs=0.05)  # first poll delay, from the start of the wait
    assert slept[1] == 5  # regular interval while running
    assert 12 <= slept[2] <= 13  # Retry-After honoured
    assert slept[3] == 5  # back to the regular interval: detection stays within one poll interval


@pytest.mark.asyncio
@pytest.mark.parametrize(("interval", "lines"), [(1000.0, 0), (0.0, 5)])
async def test_progress_lines_are_rate_limited(monkeypatch, capfd, interval, lines):
    monkeypatch.setattr(wait_module, "PROGRESS_LOG_INTERVAL", interval)
    hook = FakeHook(RUNNING, RUNNING, RUNNING, RUNNING, RUNNING, SUCCESS)
    await only_event(make_trigger(monkeypatch, hook))
    out, err = capfd.readouterr()
    assert (out + err).count("Runway task t-1 is running (generating)") == lines


@pytest.mark.asyncio
async def test_missing_connection_is_an_error_event(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_RUNWAY_NOWHERE", raising=False)
    event = await only_event(RunwayTaskTrigger(task_id="t-1", runway_conn_id="runway_nowhere"))
    assert event["status"] == "error" and "runway_nowhere" in event["message"]


# --------------------------------------------------------------------------- real hook, mocked HTTP


DETAIL = re.compile(rf"^{re.escape(BASE)}/api/v1/runway/record-detail\?taskId=t-1$")


def envelope(data: dict) -> dict:
    return {"code": 200, "msg": "success", "data": data}


@pytest.mark.asyncio
async def test_with_real_hook_over_mocked_http(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps({"conn_type": "runway", "host": BASE, "password": API_KEY})
    )
    with mock_aiohttp() as mocked:
        mocked.get(DETAIL, payload=envelope({"taskId": "t-1", "state": "queueing"}))
        mocked.get(DETAIL, status=500, payload={"code": 500, "msg": "server error"})
        mocked.get(DETAIL, status=200, payload={"code": 455, "msg": "maintenance"})
        mocked.get(DETAIL, payload=envelope({"taskId": "t-1", "state": "generating"}))
        mocked.get(
            DETAIL,
            payload=envelope(
                {
                    "taskId": "t-1",
                    "state": "fail",
                    "failCode": 400,
                    "failMsg": "Reached the limit for concurrent generations",
                }
            ),
        )
        trigger = RunwayTaskTrigger(task_id="t-1", poll_interval=0.01, retry_limit=0, retry_delay=0)
        event = await only_event(trigger)
    assert event["status"] == "failed"
    assert "Reached the limit for concurrent generations" in event["message"] and "400" in event["message"]
    assert API_KEY not in json.dumps(event)


ALEPH_INFO = re.compile(rf"^{re.escape(BASE)}/api/v1/aleph/record-info\?taskId=a-1$")


@pytest.mark.asyncio
async def test_aleph_with_string_flags_waits_then_succeeds(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps({"conn_type": "runway", "host": BASE, "password": API_KEY})
    )
    running = {"taskId": "a-1", "successFlag": "0", "errorCode": "0", "errorMessage": None, "response": None}
    done = {
        "taskId": "a-1",
        "successFlag": "1",
        "errorCode": "0",
        "response": json.dumps({"resultVideoUrl": "https://cdn.test/a.mp4"}),
    }
    with mock_aiohttp() as mocked:
        mocked.get(ALEPH_INFO, payload=envelope(running))
        mocked.get(ALEPH_INFO, payload=envelope(running))
        mocked.get(ALEPH_INFO, payload=envelope(done))
        event = await only_event(RunwayTaskTrigger(task_id="a-1", family="aleph", poll_interval=0.01))
    assert event["status"] == "success", event
    assert (event["family"], event["task"]["video_url"]) == ("aleph", "https://cdn.test/a.mp4")
