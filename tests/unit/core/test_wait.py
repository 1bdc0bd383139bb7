"""The wait policy alone: each status read judged with an injected clock, no sleeping."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayGenerationError,
    RunwayNotFoundError,
    RunwayRateLimitedError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.core.wait import (
    MAX_CONSECUTIVE_READ_ERRORS,
    NOT_FOUND_GRACE_SECONDS,
    Outcome,
    WaitDecision,
    WaitPolicy,
    WaitState,
    deadline_for,
    wait_sync,
)

T0 = 1_800_000_000.0


def task(status: TaskStatus, **fields: object) -> RunwayTask:
    return RunwayTask(task_id="t-1", family=TaskFamily.RUNWAY, status=status, raw_state=status.value, **fields)  # type: ignore[arg-type]


def policy(**kwargs: object) -> WaitPolicy:
    kwargs.setdefault("poll_interval", 5.0)
    kwargs.setdefault("retry_delay", 1.0)
    return WaitPolicy("t-1", **kwargs)  # type: ignore[arg-type]


START = WaitState(started_at=T0)


def test_pending_polls_after_the_interval_and_remembers_the_task() -> None:
    decision = policy().decide(task(TaskStatus.RUNNING), START, T0 + 1)
    assert (decision.outcome, decision.delay) == (Outcome.POLL, 5.0)
    assert decision.state.seen and decision.state.last_state == "running" and decision.log is None


def test_success_expired_and_failed() -> None:
    done = policy().decide(task(TaskStatus.SUCCEEDED, video_url="https://cdn.test/v.mp4?sig=x"), START, T0)
    assert done.outcome is Outcome.DONE and done.message == "Runway task t-1 succeeded: https://cdn.test/v.mp4"
    expired = policy().decide(task(TaskStatus.SUCCEEDED, expired=True), START, T0)
    assert (expired.outcome, expired.remote, expired.retryable) == (Outcome.FAILED, False, False)
    assert "expired" in expired.message and expired.event_status == "failed"
    failed = policy().decide(task(TaskStatus.FAILED, fail_code="400", fail_message="nope"), START, T0)
    assert failed.outcome is Outcome.FAILED and failed.remote
    assert failed.message == "Runway task t-1 failed (fail code 400): nope"
    on_read = policy().decide(RunwayGenerationError("generation failed", code=501), START, T0)
    assert on_read.remote and on_read.message == "Runway task t-1 failed (fail code 501): generation failed"


def test_not_found_is_a_grace_until_seen_or_past_the_grace() -> None:
    missing = RunwayNotFoundError("task not found", code=404)
    early = policy().decide(missing, START, T0 + NOT_FOUND_GRACE_SECONDS - 1)
    assert early.outcome is Outcome.POLL and not early.read_failed and "not visible yet" in (early.log or "")
    late = policy().decide(missing, START, T0 + NOT_FOUND_GRACE_SECONDS)
    assert late.outcome is Outcome.FAILED and not late.retryable and "t-1 was not found" in late.message
    seen = policy().decide(task(TaskStatus.RUNNING), START, T0).state
    assert policy().decide(missing, seen, T0 + 1).outcome is Outcome.FAILED


def test_transient_errors_back_off_then_give_up_as_retryable() -> None:
    error = RunwayUnavailableError("down", code=500)
    state = START
    for attempt in range(1, MAX_CONSECUTIVE_READ_ERRORS):
        decision = policy(poll_interval=0.1).decide(error, state, T0)
        assert decision.outcome is Outcome.POLL and decision.read_failed and decision.warn
        base = min(60.0, 2 ** (attempt - 1))
        assert max(0.1, base / 2) <= decision.delay <= base
        state = decision.state
    final = policy().decide(error, state, T0)
    assert final.outcome is Outcome.FAILED and final.retryable and final.event_status == "error"
    assert final.message.startswith(f"Could not read Runway task t-1: gave up after {MAX_CONSECUTIVE_READ_ERRORS}")
    assert policy().decide(task(TaskStatus.RUNNING), state, T0).state.errors == 0


def test_retry_after_is_honoured() -> None:
    decision = policy(retry_delay=0.0).decide(RunwayRateLimitedError("slow", code=429, retry_after=12), START, T0)
    assert decision.delay == 12


def test_permanent_errors_fail_at_once() -> None:
    decision = policy().decide(RunwayAuthError("Invalid API key", code=401), START, T0)
    assert decision.outcome is Outcome.FAILED and not decision.retryable and not decision.remote
    assert decision.message == "Could not read Runway task t-1: [401] Invalid API key"


def test_deadline_shortens_the_last_pause_then_times_out() -> None:
    rules = policy(deadline=T0 + 12, deadline_source="timeout of 12 s")
    assert rules.decide(task(TaskStatus.RUNNING), START, T0 + 10).delay == 2
    timed_out = rules.decide(task(TaskStatus.RUNNING), START, T0 + 12)
    assert timed_out.outcome is Outcome.TIMED_OUT and timed_out.event_status == "timeout"
    assert timed_out.message.startswith("Runway task t-1 did not finish within the timeout of 12 s (deadline 20")
    assert "waited 12.0 s, last state running" in timed_out.message
    assert rules.decide(task(TaskStatus.SUCCEEDED), START, T0 + 99).outcome is Outcome.DONE  # a last read counts


def progress_lines(task_id: str, seconds: range) -> list[int]:
    """The seconds into the wait at which a wait read every second logs a progress line."""
    rules, state, logged = WaitPolicy(task_id, poll_interval=1.0), START, []
    for second in seconds:
        running = RunwayTask(task_id=task_id, family=TaskFamily.RUNWAY, status=TaskStatus.RUNNING, raw_state="running")
        decision = rules.decide(running, state, T0 + second)
        state = decision.state
        if decision.log:
            assert decision.log == f"Runway task {task_id} is running (running) after {second} s"
            logged.append(second)
    return logged


def test_progress_lines_come_an_interval_apart_the_first_within_15_to_45_s() -> None:
    logged = progress_lines("t-1", range(0, 200))
    assert 15 <= logged[0] <= 45
    assert [later - earlier for earlier, later in itertools.pairwise(logged)] == [30] * (len(logged) - 1)
    assert len(logged) >= 5


def test_waits_started_together_log_their_first_lines_apart() -> None:
    """A mapped batch's waits start in the same second: their progress lines must not all fall in one turn."""
    firsts = [progress_lines(f"task-{n}", range(0, 50))[0] for n in range(300)]
    per_second = max(firsts.count(second) for second in set(firsts))
    assert per_second <= 30  # spread over the 30 s from 15 to 45 (10 a second on average)
    assert min(firsts) <= 17 and max(firsts) >= 43


def test_execution_timeout_wins_only_when_earlier() -> None:
    assert deadline_for(T0, 1800) == (T0 + 1800, "timeout of 1800 s")
    assert deadline_for(T0, 1800, started_at=T0 - 5, execution_timeout=60) == (T0 + 55, "execution_timeout of 60 s")
    assert deadline_for(T0, 30, started_at=T0, execution_timeout=60) == (T0 + 30, "timeout of 30 s")


def test_state_and_events_are_plain_json() -> None:
    state = WaitState(started_at=T0, seen=True, errors=2, last_state="running", last_log=T0 + 30)
    assert WaitState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    failed = policy().decide(task(TaskStatus.FAILED, fail_message="x"), START, T0)
    event = json.loads(json.dumps(failed.to_event("t-1", "runway")))
    again = WaitDecision.from_event(event, "t-1")
    assert (again.outcome, again.remote, again.message) == (Outcome.FAILED, True, failed.message)
    legacy_error = WaitDecision.from_event({"status": "error", "task_id": "t-1", "message": "boom"}, "t-1")
    assert legacy_error.outcome is Outcome.FAILED and not legacy_error.retryable


def test_wait_sync_sleeps_what_the_policy_says() -> None:
    now = [T0]
    slept: list[float] = []
    reads = iter([RunwayNotFoundError("nf", code=404), task(TaskStatus.RUNNING), task(TaskStatus.SUCCEEDED)])

    def read() -> RunwayTask:
        item = next(reads)
        if isinstance(item, Exception):
            raise item
        return item

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    decision = wait_sync(read, policy(poll_interval=3), clock=lambda: now[0], sleep=sleep)
    assert decision.outcome is Outcome.DONE and slept == [3, 3]


def test_core_wait_does_not_import_airflow() -> None:
    code = (
        "import sys, airflow_provider_runway.core.wait\n"
        "sys.exit(1 if any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules) else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
