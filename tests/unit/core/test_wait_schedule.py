"""Where the wait places its reads: every ``poll_interval``, or clustered around the expected end."""

from __future__ import annotations

import itertools
import math

import pytest

from airflow_provider_runway.core import wait as wait_module
from airflow_provider_runway.core.wait import (
    AIM_PAST_END,
    FAST_POLL_INTERVAL,
    FAST_WINDOW_READS,
    LearnedDurations,
    WaitPolicy,
)

T0 = 1_800_000_000.0


def read_times(policy: WaitPolicy, start: float, until: float, first: float | None = None) -> list[float]:
    """Times of the reads of a task still running, from ``start`` (the first after ``first`` s, as the trigger)."""
    now = start + (policy.pending_delay(start) if first is None else first)
    times = []
    while now <= until + 1e-9:
        times.append(round(now - start, 6))
        now += policy.pending_delay(now)
    return times


def test_without_an_expected_end_reads_every_poll_interval() -> None:
    policy = WaitPolicy("t-1", poll_interval=5.0)
    assert read_times(policy, T0, T0 + 30, first=0.0) == [0, 5, 10, 15, 20, 25, 30]


def test_reads_cluster_around_the_expected_end_then_return_to_the_interval() -> None:
    policy = WaitPolicy("t-1", poll_interval=5.0, expected_end=T0 + 22)
    times = read_times(policy, T0, T0 + 40)
    window_start = 22 + AIM_PAST_END
    before = [t for t in times if t < window_start - 1e-9]
    # As many reads as at a fixed poll_interval, evenly spaced so the next one lands just after the end.
    assert len(before) == math.ceil(window_start / 5.0) - 1
    gaps = [b - a for a, b in zip([0.0, *before], [*before, window_start], strict=False)]
    assert gaps == pytest.approx([window_start / len(gaps)] * len(gaps)) and max(gaps) <= 5.0
    window = [window_start + i * FAST_POLL_INTERVAL for i in range(FAST_WINDOW_READS)]
    assert times[len(before) : len(before) + FAST_WINDOW_READS] == pytest.approx(window)
    after = times[len(before) + FAST_WINDOW_READS :]
    assert after and all(b - a == pytest.approx(5.0) for a, b in zip([window[-1], *after], after, strict=False))


@pytest.mark.parametrize("expected", [7.3, 22.0, 61.0, 149.5])
def test_gaps_never_exceed_the_poll_interval(expected: float) -> None:
    policy = WaitPolicy("t-1", poll_interval=5.0, expected_end=T0 + expected)
    times = [0.0, *read_times(policy, T0, T0 + expected + 60)]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 5.0 + 1e-9


@pytest.mark.parametrize("ends_at", [12.0, 22.0, 61.0, 150.0])
def test_an_end_on_time_is_seen_within_a_second_with_no_more_reads(ends_at: float) -> None:
    placed = read_times(WaitPolicy("t-1", poll_interval=5.0, expected_end=T0 + ends_at), T0, T0 + 1000)
    seen = next(t for t in placed if t >= ends_at)
    assert seen - ends_at == pytest.approx(AIM_PAST_END)
    fixed = read_times(WaitPolicy("t-1", poll_interval=5.0), T0, T0 + 1000, first=0.0)  # today: at once, then 5 s
    reads_placed = sum(1 for t in placed if t <= seen)
    reads_fixed = sum(1 for t in fixed if t <= next(t for t in fixed if t >= ends_at))
    assert reads_placed <= reads_fixed
    assert next(t for t in fixed if t >= ends_at) - ends_at == pytest.approx(math.ceil(ends_at / 5) * 5 - ends_at)


def test_a_short_poll_interval_is_left_alone() -> None:
    policy = WaitPolicy("t-1", poll_interval=0.5, expected_end=T0 + 10)
    assert policy.pending_delay(T0) == 0.5


def test_expected_duration_given_wins_then_learned_median_then_unknown() -> None:
    learned = LearnedDurations()
    assert learned.expected("runway", 5, "720p") is None
    for seconds in (20.0, 30.0, 22.0):
        learned.learn("runway", 5, "720p", seconds)
    assert learned.expected("runway", 5, "720p") == 22.0
    assert learned.expected("runway", 5, "720P") == 22.0  # quality is compared case-insensitively
    assert learned.expected("runway", 10, "720p") is None  # another duration is another kind of generation
    assert learned.expected("aleph", 5, "720p") is None
    assert learned.expected("runway", 5, "720p", given=90) == 90.0


def test_learning_ignores_nonsense_and_keeps_recent_samples() -> None:
    learned = LearnedDurations()
    learned.learn("runway", 5, "720p", -3.0)
    learned.learn("runway", 5, "720p", 0.0)
    assert learned.expected("runway", 5, "720p") is None
    for _ in range(wait_module.LEARNED_SAMPLES):
        learned.learn("runway", 5, "720p", 100.0)
    for _ in range(wait_module.LEARNED_SAMPLES):
        learned.learn("runway", 5, "720p", 40.0)
    assert learned.expected("runway", 5, "720p") == 40.0
