"""The benchmark's pure helpers: percentiles, ratios, tables and the loop-lag probe."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from bench.common import SimPhases
from bench.stats import LoopLagProbe, fmt, format_table, per_thousand_wait_minutes, percentile, ratio


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(range(1, 101), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_is_nan_and_q_is_checked():
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_ratio_and_cpu_per_thousand_wait_minutes():
    assert ratio(3, 2) == 1.5
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 2))
    # 2 CPU seconds over 500 waits of 2 minutes each: 2 s per 1,000 wait-minutes.
    assert per_thousand_wait_minutes(2.0, 500 * 120) == pytest.approx(2.0)


def test_fmt_and_table_alignment():
    assert fmt(None) == "-"
    assert fmt(math.nan) == "-"
    assert fmt(1234.567) == "1,234.57"
    assert fmt(5000) == "5,000"
    text = format_table(["N", "variant", "CPU"], [["100", "ours", "1.50"], ["5,000", "floor", "12.00"]], title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1].split() == ["N", "variant", "CPU"]
    assert lines[3].startswith("100  ") and lines[3].endswith(" 1.50")
    assert len({len(line) for line in lines[1:]}) == 1  # every row padded to the same width


def test_sim_phases_bounds():
    phases = SimPhases(wait=2, queueing=5, generating=90, jitter=60, time_scale=0.5)
    assert phases.earliest == pytest.approx(18.5)
    assert phases.latest == pytest.approx(78.5)
    assert "--generating-jitter" in phases.cli_args()


@pytest.mark.asyncio
async def test_loop_lag_probe_sees_a_blocked_loop():
    probe = LoopLagProbe(interval=0.01)
    probe.start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # block the loop on purpose
    await asyncio.sleep(0.05)
    await probe.stop()
    summary = probe.summary()
    assert summary["samples"] >= 3
    assert summary["max_ms"] >= 150
