"""The trigger places its reads around the expected end and learns generation times from its own waits."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.core.wait import AIM_PAST_END, LearnedDurations, WaitState
from airflow_provider_runway.triggers import runway as trigger_module
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from tests.harness.fakes import FakeAsyncHook

RUNNING = RunwayTask(task_id="t-1", family=TaskFamily.RUNWAY, status=TaskStatus.RUNNING, raw_state="generating")
SUCCESS = RunwayTask(
    task_id="t-1", family=TaskFamily.RUNWAY, status=TaskStatus.SUCCEEDED, video_url="https://cdn.test/v.mp4"
)


def clocked_hook(clock: list[float], ends_at: float) -> tuple[FakeAsyncHook, list[float]]:
    """A hook answering RUNNING until ``ends_at`` on a fake clock, then SUCCESS; and when each read happened."""
    reads: list[float] = []

    async def answer(task_id: str, family: object) -> RunwayTask:
        reads.append(clock[0])
        return SUCCESS if clock[0] >= ends_at else RUNNING

    return FakeAsyncHook(answer), reads


def run(monkeypatch: pytest.MonkeyPatch, ends_after: float, **kwargs: object) -> tuple[list[float], dict]:
    start = 1_800_000_000.0
    clock = [start]
    hook, reads = clocked_hook(clock, start + ends_after)
    monkeypatch.setattr(trigger_module, "time", SimpleNamespace(time=lambda: clock[0]))

    async def sleep(self: object, seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(trigger_module._Wait, "sleep", sleep)
    trigger = RunwayTaskTrigger(task_id="t-1", poll_interval=5.0, duration=5, quality="720p", **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(trigger, "_hook", lambda: hook)

    async def only() -> dict:
        events = [event async for event in trigger.run()]
        return events[0].payload

    payload = asyncio.run(only())
    return [round(t - start, 6) for t in reads], payload


def test_without_an_expectation_the_reads_are_those_of_today(monkeypatch: pytest.MonkeyPatch) -> None:
    reads, payload = run(monkeypatch, 22.0)
    assert payload["status"] == "success"
    assert reads == [0, 5, 10, 15, 20, 25]  # at once, then every poll_interval: 3 s late


def test_an_expected_duration_puts_a_read_right_after_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    reads, _ = run(monkeypatch, 22.0, expected_duration=22.0)
    assert reads[-1] == pytest.approx(22.0 + AIM_PAST_END)
    assert len(reads) == 5  # today's: 6 (at once, then every 5 s)
    assert max(b - a for a, b in zip([0.0, *reads], reads, strict=False)) <= 5.0


def test_a_read_made_before_deferring_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator read the task 0.1 s after creating it; the trigger took over at 1.5 s.
    start = 1_800_000_000.0
    state = WaitState(started_at=start - 1.5, seen=True, last_read_at=start - 1.4).to_dict()
    reads, payload = run(monkeypatch, 20.5, wait_state=state)  # ends 22 s after the creation
    assert payload["status"] == "success"
    # No read at once: every poll_interval after the operator's read, the wait's clock starting at the creation.
    assert reads == pytest.approx([3.6, 8.6, 13.6, 18.6, 23.6])
    assert len(reads) == 5


@pytest.fixture
def learned(monkeypatch: pytest.MonkeyPatch) -> LearnedDurations:
    """One triggerer's memory across the waits of a test (each ``asyncio.run`` is a new loop otherwise)."""
    shared = LearnedDurations()
    monkeypatch.setattr(LearnedDurations, "of_running_loop", classmethod(lambda cls: shared))
    return shared


def test_each_event_loop_learns_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer's loop keeps what its waits learned; another loop (another triggerer, a test) starts empty."""

    async def learn_then_expect() -> float | None:
        LearnedDurations.of_running_loop().learn("runway", 5, "720p", 21.0)
        return LearnedDurations.of_running_loop().expected("runway", 5, "720p")

    assert asyncio.run(learn_then_expect()) == 21.0
    assert asyncio.run(learn_then_expect()) == 21.0  # not the median of two loops' samples: each starts empty

    async def expect() -> float | None:
        return LearnedDurations.of_running_loop().expected("runway", 5, "720p")

    assert asyncio.run(expect()) is None
    assert LearnedDurations.of_running_loop().expected("runway", 5, "720p") is None  # outside a loop


def test_the_trigger_learns_from_its_waits(monkeypatch: pytest.MonkeyPatch, learned: LearnedDurations) -> None:
    assert learned.expected("runway", 5, "720p") is None
    run(monkeypatch, 22.0)  # pending at 20 s, seen at 25 s: no completion time in the record
    assert learned.expected("runway", 5, "720p") == 22.5
    reads, _ = run(monkeypatch, 22.7)  # the next wait of the same kind reads right after 22.5 s
    assert reads[-1] == pytest.approx(22.5 + AIM_PAST_END) and len(reads) == 5


def test_a_completion_time_in_the_record_is_what_is_learned(learned: LearnedDurations) -> None:
    from datetime import datetime, timezone

    real_now = time.time()
    trigger = RunwayTaskTrigger(task_id="t-1", duration=10, quality="1080p")
    done = RunwayTask(
        task_id="t-1",
        family=TaskFamily.RUNWAY,
        status=TaskStatus.SUCCEEDED,
        completed_at=datetime.fromtimestamp(real_now - 3, tz=timezone.utc),
    )
    trigger._learn(done, started_at=real_now - 60)
    # Runway's completion time has whole seconds: the end lies within the second after it.
    assert learned.expected("runway", 10, "1080p") == pytest.approx(57.5, abs=0.01)
    implausible = RunwayTask(
        task_id="t-1",
        family=TaskFamily.RUNWAY,
        status=TaskStatus.SUCCEEDED,
        completed_at=datetime.fromtimestamp(real_now + 3600, tz=timezone.utc),  # a zone off by an hour
    )
    trigger._learn(implausible, started_at=real_now - 60)
    trigger._learn(implausible, started_at=real_now - 60)
    # Without a read that found it running, the implausible time leaves no lower bound: nothing learned.
    assert learned.expected("runway", 10, "1080p") == pytest.approx(57.5, abs=0.01)
    trigger._learn(implausible, started_at=real_now - 60, pending_read_at=real_now - 10)
    trigger._learn(implausible, started_at=real_now - 60, pending_read_at=real_now - 10)
    assert learned.expected("runway", 10, "1080p") == pytest.approx(55.0, abs=0.5)  # between the two reads


def test_waits_that_start_after_the_end_learn_nothing(
    monkeypatch: pytest.MonkeyPatch, learned: LearnedDurations
) -> None:
    # Tasks already finished when their wait starts (a triggerer back after an outage): the first read sees
    # the end, which only bounds it from above. Learning it would push each next first read further out.
    created_long_ago = WaitState(started_at=1_800_000_000.0 - 30).to_dict()
    for _ in range(4):
        reads, payload = run(monkeypatch, 0.0, wait_state=created_long_ago)
        assert payload["status"] == "success" and reads == [0]
    assert learned.expected("runway", 5, "720p") is None
