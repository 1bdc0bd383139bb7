"""The simulator's state machine, accounts and callbacks queue, driven by a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.engine import (
    ALEPH,
    CONCURRENCY_MESSAGE,
    SimEngine,
    SimError,
    account_label,
    credit_cost,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(**fields: Any) -> tuple[SimEngine, Clock]:
    defaults: dict[str, Any] = {
        "wait_seconds": 1,
        "queueing_seconds": 2,
        "generating_seconds": 10,
        "concurrency_limit": 0,
    }
    clock = Clock()
    return SimEngine(SimulatorConfig(**{**defaults, **fields}), clock), clock


def create(engine: SimEngine, key: str = "k", kind: str = "generate", **extra: Any):
    args: dict[str, Any] = {
        "kind": kind,
        "params": {},
        "duration": 5,
        "quality": "720p",
        "aspect_ratio": "16:9",
        "base_url": "http://sim",
        "callback_url": None,
    }
    args.update(extra)
    return engine.create(engine.account(key), **args)


def test_phases_follow_the_configured_durations():
    engine, clock = make()
    task = create(engine)
    seen = []
    for offset in (0.0, 0.99, 1.0, 2.9, 3.0, 12.9, 13.0):
        clock.now = task.created + offset
        seen.append(engine.snapshot(task).state)
    assert seen == ["wait", "wait", "queueing", "queueing", "generating", "generating", "success"]


def test_time_scale_shrinks_every_phase():
    engine, clock = make(time_scale=0.01)
    task = create(engine)
    assert task.t_done - task.created == pytest.approx(0.13)
    clock.now = task.created + 0.131
    assert engine.snapshot(task).state == "success"


def test_aleph_tasks_use_their_own_durations():
    engine, _ = make(aleph_wait_seconds=5, aleph_generating_seconds=100)
    task = create(engine, kind=ALEPH)
    assert task.family == ALEPH
    assert task.t_done - task.created == pytest.approx(105)


def test_same_seed_gives_same_ids_and_jitter_other_seed_does_not():
    runs = []
    for seed in (7, 7, 8):
        engine, _ = make(seed=seed, generating_jitter=5)
        tasks = [create(engine) for _ in range(20)]
        runs.append([(t.task_id, round(t.t_done - t.created, 6)) for t in tasks])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    spans = [span for _, span in runs[0]]
    assert min(spans) >= 3 + 10 - 5 and max(spans) <= 3 + 10 + 5
    assert len(set(spans)) > 10  # really spread


def test_credits_are_charged_and_402_when_short():
    engine, _ = make(starting_credits=130)
    create(engine, duration=10)  # 120 credits
    account = engine.account("k")
    assert account.credits == 10 and account.credits_spent == 120
    with pytest.raises(SimError) as err:
        create(engine)
    assert err.value.code == 402
    assert account.tasks_created == 1


def test_cost_table():
    assert credit_cost("generate", 5, "720p") == 60
    assert credit_cost("generate", 10, "720p") == 120
    assert credit_cost("generate", 5, "1080p") == 70
    assert credit_cost(ALEPH, 5, "720p") == 60


def test_concurrency_limit_counts_unfinished_tasks_per_key():
    engine, clock = make(concurrency_limit=2, concurrency_mode="refuse")
    first = create(engine)
    create(engine)
    with pytest.raises(SimError) as err:
        create(engine)
    assert err.value.code == 400 and CONCURRENCY_MESSAGE in err.value.message
    create(engine, key="other")  # another account is not affected
    clock.now = first.t_done + 0.01
    create(engine)  # both finished: room again


def test_concurrency_limit_can_be_reported_as_429():
    engine, _ = make(concurrency_limit=1, concurrency_error_code=429, concurrency_mode="refuse")
    create(engine)
    with pytest.raises(SimError) as err:
        create(engine)
    assert err.value.code == 429


def test_expiry_after_retention():
    engine, clock = make(retention_seconds=100)
    task = create(engine)
    clock.now = task.t_done + 99
    assert not engine.snapshot(task).expired
    clock.now = task.t_done + 100
    assert engine.snapshot(task).expired


def test_forced_failure_now_or_at_completion():
    engine, clock = make()
    now_task, later_task = create(engine), create(engine)
    engine.fail(now_task, 400, "Inappropriate content detected")
    assert engine.snapshot(now_task).state == "fail"
    engine.fail(later_task, 500, "boom", immediate=False)
    assert engine.snapshot(later_task).state == "wait"
    clock.now = later_task.t_done
    assert engine.snapshot(later_task).state == "fail"
    with pytest.raises(SimError) as err:
        engine.fail(later_task, 400, "again")
    assert err.value.code == 409


def test_failure_rate_fails_that_share_of_tasks_deterministically():
    engine, clock = make(failure_rate=0.5, seed=3, starting_credits=100_000)
    tasks = [create(engine) for _ in range(200)]
    clock.now += 1000
    failed = sum(engine.snapshot(t).state == "fail" for t in tasks)
    assert 60 < failed < 140


def test_pause_holds_generating_tasks_and_resume_releases_them():
    engine, clock = make()
    task = create(engine)
    engine.pause()
    clock.now = task.t_done + 50
    snap = engine.snapshot(task)
    assert (snap.state, snap.held) == ("generating", True)
    assert engine.task_info(task)["completes_at"] is None
    assert engine.resume() == 1
    assert engine.snapshot(task).state == "success"
    assert engine.task_info(task)["completes_at"] == clock.now


def test_pause_does_not_touch_tasks_finished_before_it():
    engine, clock = make()
    task = create(engine)
    clock.now = task.t_done + 1
    engine.pause()
    assert engine.snapshot(task).state == "success"


def test_due_callbacks_returns_each_finished_task_once():
    engine, clock = make()
    with_cb = create(engine, callback_url="http://127.0.0.1:1/cb")
    create(engine)  # no callback
    assert engine.due_callbacks() == []
    clock.now = with_cb.t_done
    assert engine.due_callbacks() == [with_cb]
    assert engine.due_callbacks() == []


def test_held_task_callback_waits_for_resume():
    engine, clock = make()
    task = create(engine, callback_url="http://127.0.0.1:1/cb")
    engine.pause()
    clock.now = task.t_done + 1
    assert engine.due_callbacks() == []
    engine.resume()
    clock.now += 0.1
    assert engine.due_callbacks() == [task]


def test_authentication():
    engine, _ = make(api_keys=("good",))
    assert engine.authenticate("Bearer good").label == account_label("good")
    for header in (None, "", "Bearer ", "Basic good", "Bearer bad"):
        with pytest.raises(SimError) as err:
            engine.authenticate(header)
        assert err.value.code == 401
    open_engine, _ = make()
    assert open_engine.authenticate("bearer anything").label == account_label("anything")


def test_counters_never_show_keys():
    engine, _ = make()
    create(engine, key="secret-key-123")
    text = repr(engine.counters())
    assert "secret-key-123" not in text
    assert engine.counters()["tasks_created"] == {account_label("secret-key-123"): 1}


def test_reset_forgets_everything_and_restarts_ids():
    engine, _ = make()
    first = create(engine)
    engine.reset()
    assert engine.tasks == {} and engine.accounts == {}
    assert create(engine).task_id == first.task_id


def test_limit_switched_on_at_runtime_counts_tasks_created_before():
    engine, _ = make()
    create(engine)
    engine.config = engine.config.updated({"concurrency_limit": 1})
    assert engine.snapshot(create(engine)).state == "fail"  # default: accepted, then failed
    engine.config = engine.config.updated({"concurrency_mode": "refuse"})
    with pytest.raises(SimError):
        create(engine)


def test_concurrency_limit_in_fail_task_mode_accepts_then_fails_for_free():
    engine, _ = make(concurrency_limit=1, concurrency_mode="fail_task")
    create(engine)
    over = create(engine)
    assert engine.snapshot(over).state == "fail"
    assert over.failure == (400, CONCURRENCY_MESSAGE) and over.cost == 0
    assert engine.account("k").credits_spent == 60


def test_rate_limit_refuses_with_retry_after_and_takes_no_slot():
    engine, clock = make(rate_limit_creates=2, rate_limit_window=10)
    account = engine.account("k")
    engine.admit_create(account)
    clock.now += 4
    engine.admit_create(account)
    with pytest.raises(SimError) as err:
        engine.admit_create(account)
    assert err.value.code == 429 and err.value.http is True
    assert err.value.headers == {"Retry-After": "6"}  # until the first create leaves the window
    clock.now += 5.5
    with pytest.raises(SimError) as err:
        engine.admit_create(account)
    assert err.value.headers == {"Retry-After": "1"}
    engine.admit_create(engine.account("other"))  # per key
    clock.now += 0.5
    engine.admit_create(account)  # the first one left the window
    assert account.rate_limited == 2
    assert engine.counters()["rate_limited"] == {account_label("k"): 2, account_label("other"): 0}


@pytest.mark.parametrize("limit", [0, None])
def test_rate_limit_off(limit):
    engine, _ = make(rate_limit_creates=limit)
    account = engine.account("k")
    for _ in range(100):
        engine.admit_create(account)
    assert account.rate_limited == 0


def test_random_failures_use_the_configured_fail_code():
    engine, _ = make(failure_rate=1.0)
    assert create(engine).failure == (400, "Internal error during generation, please try again")
    engine.config = engine.config.updated({"failure_code": 501, "failure_message": "boom"})
    assert create(engine).failure == (501, "boom")


def test_concurrency_overflow_counts_apart_from_creations():
    engine, _ = make(concurrency_limit=1)
    create(engine)
    over = create(engine)
    assert over.create_failed and over.cost == 0
    counters = engine.counters()
    assert counters["tasks_created"] == {account_label("k"): 1}
    assert counters["concurrency_failures"] == {account_label("k"): 1}
    assert counters["tasks_total"] == 2
