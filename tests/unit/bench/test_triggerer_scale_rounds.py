"""The triggerer-scale ratios come from the median round of each variant; each round's own ratio is shown too."""

from __future__ import annotations

from bench.triggerer_scale import Row, ratio_table


def row(variant: str, round_no: int, cpu_per_kwm: float) -> Row:
    return Row(
        n=1000, variant=variant, first_poll_delay=0.0, cpu_s=cpu_per_kwm, wall_s=60.0, wait_min=775.0,
        cpu_per_kwm=cpu_per_kwm, rss_peak_mb=130.0, rss_growth_mb=5.0, requests_per_task=10.3, latency_p50_s=2.6,
        latency_p99_s=4.9, lag_p99_ms=2.0, lag_max_ms=3.0, lag_steady_p99_ms=2.0, gc_max_ms=3.0, gc_total_ms=50.0,
        errors=0, sim_cpu_s=2.5, round_no=round_no,
    )  # fmt: skip


def test_ratios_use_the_median_round_and_list_every_rounds_own() -> None:
    rows = [
        row("floor", 1, 4.0), row("ours", 1, 5.0),
        row("ours", 2, 3.3), row("floor", 2, 3.0),
        row("floor", 3, 5.0), row("ours", 3, 5.5),
    ]  # fmt: skip
    table = ratio_table(rows, poll_interval=5.0)
    line = next(line for line in table.splitlines() if line.startswith("1,000"))
    # Medians: ours 5.0 (of 3.3, 5.0, 5.5), floor 4.0 (of 3.0, 4.0, 5.0): 1.25, not a mean and not round 1 only.
    assert line.split()[1] == "1.25"
    assert "1.25 1.10 1.10" in line  # round by round: 5.0/4.0, 3.3/3.0, 5.5/5.0
    assert "<=1.2x floor: FAIL" in line


def test_one_round_shows_no_per_round_column() -> None:
    table = ratio_table([row("floor", 1, 4.0), row("ours", 1, 4.4)], poll_interval=5.0)
    line = next(line for line in table.splitlines() if line.startswith("1,000"))
    assert line.split()[1:3] == ["1.10", "-"]
    assert "<=1.2x floor: PASS" in line
