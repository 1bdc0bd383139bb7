"""Unit tests of the real-triggerer benchmark's own tooling (no Airflow processes started)."""

from __future__ import annotations

import importlib
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS
from bench import triggerer_real
from bench.triggerer_real import PhaseResult

#: The bench writes deferrals with ``airflow.sdk.serde``, as the execution API of Airflow 3.2 and later does.
AIRFLOW_V_3_2_PLUS = Version(Version(airflow_version).base_version) >= Version("3.2.0")

TRIGGERER_LOG = """\
2026-12-06T16:37:00.712489Z [info     ] Starting the triggerer         [airflow.jobs.triggerer_job_runner] loc=x.py:263
2026-12-06T16:37:23.667496Z [info     ] Triggerer's async thread was blocked for 0.26 seconds, exceeding the \
configured warning threshold of 0.20 seconds. This is likely caused by a badly-written trigger. [airflow.jobs]
2026-12-06T16:37:35.438649Z [info     ] Heartbeat recovered after 11.75 seconds [airflow.jobs.job.Job] loc=job.py:239
2026-12-06T16:37:35.760284Z [info     ] Triggerer's async thread was blocked for 0.33 seconds, exceeding the \
configured warning threshold of 0.20 seconds. [airflow.jobs.triggerer_job_runner]
"""


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def phase(name: str = "runway", **changes: object) -> PhaseResult:
    fields: dict[str, object] = {
        "phase": name,
        "count": 4,
        "ended": 4,
        "states": {"success": 4},
        "wall_s": 100.0,
        "wait_seconds": 240.0,
        "peak_concurrent": 4,
        "cpu_s": {"triggerer": 2.0, "scheduler": 1.0, "runway-sim": 1.0},
        "blocked_warnings": 0,
        "triggerer_rss_mb": 300.0,
        "detect_lags": [0.5, 1.0, 2.0, 5.5],
        "end_lags": [1.0, 1.5, 2.5, 6.0],
        "creations": 4,
        "reads": 40,
    }
    fields.update(changes)
    return PhaseResult(**fields)  # type: ignore[arg-type]


def test_blocked_events_reads_each_warning_with_its_time_and_length() -> None:
    assert triggerer_real.blocked_events(TRIGGERER_LOG) == [
        (epoch("2026-12-06T16:37:23.667496Z"), 0.26),
        (epoch("2026-12-06T16:37:35.760284Z"), 0.33),
    ]
    # The heartbeat line says "after 11.75 seconds", not "blocked": it is no loop warning.
    assert triggerer_real.count_lines(TRIGGERER_LOG, triggerer_real.BLOCKED_WARNING) == 2


def test_the_warning_text_is_the_installed_airflows() -> None:
    """The benchmark counts the line Airflow's own watchdog writes, whichever Airflow is installed."""
    module = importlib.import_module("airflow.jobs.triggerer_job_runner")
    source = Path(str(module.__file__)).read_text()
    assert triggerer_real.BLOCKED_WARNING in source.lower()


def test_peak_concurrency_counts_overlapping_waits_only() -> None:
    assert triggerer_real.peak_concurrency([]) == 0
    assert triggerer_real.peak_concurrency([(0, 10), (1, 5), (2, 3), (20, 30)]) == 3
    # One wait ending as the next starts: never two at once.
    assert triggerer_real.peak_concurrency([(0, 5), (5, 10)]) == 1


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert triggerer_real.percentile(values, 0.5) == 50.0
    assert triggerer_real.percentile(values, 0.99) == 99.0
    assert triggerer_real.percentile([3.0], 0.99) == 3.0
    assert triggerer_real.percentile([], 0.5) is None


def test_cpu_per_thousand_wait_minutes() -> None:
    # 3 CPU seconds over 1,000 waits of 60 s each: 3 s per 1,000 wait-minutes.
    assert triggerer_real.per_thousand_wait_minutes(3.0, 1000 * 60.0) == pytest.approx(3.0)


def test_db_time_reads_sqlite_timestamps_as_utc() -> None:
    expected = epoch("2026-12-06T16:37:23.667496Z")
    assert triggerer_real.db_time("2026-12-06 16:37:23.667496") == expected
    assert triggerer_real.db_time("2026-12-06 16:37:23.667496+00:00") == expected
    assert triggerer_real.db_time(None) is None


def test_task_instances_reads_state_and_end_of_one_run(tmp_path: Path) -> None:
    db_path = tmp_path / "airflow.db"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE task_instance (dag_id, run_id, task_id, map_index, state, end_date)")
        db.executemany(
            "INSERT INTO task_instance VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("d", "r1", "t", 0, "success", "2026-12-06 16:37:23.000000"),
                ("d", "r1", "t", 1, "deferred", None),
                ("d", "r2", "t", 0, "success", "2026-12-06 16:40:00.000000"),
            ],
        )

    rows = sorted(triggerer_real.task_instances(db_path, "d", "r1"))

    assert rows == [(0, "success", epoch("2026-12-06T16:37:23Z")), (1, "deferred", None)]


def test_verdicts_hold_the_issue_targets() -> None:
    good, timer = phase(), phase("timedelta", cpu_s={"triggerer": 1.0}, detect_lags=[])
    lines = triggerer_real.verdicts([good, timer], poll_interval=5.0)
    assert lines[0].startswith("triggerer CPU per 1,000 wait-minutes, runway / timedelta: 2.00")
    assert "FAIL" not in "\n".join(lines)

    late = phase(detect_lags=[0.5, 6.5])  # p99 past poll + 1 s
    blocked = phase(blocked_warnings=1, blocked=[(12.0, 0.3)])
    paid_twice = phase(creations=5)
    failed = phase(states={"success": 3, "failed": 1})
    assert "detect p99 <= poll + 1 s (6 s): FAIL" in triggerer_real.verdicts([late], 5.0)[0]
    blocked_lines = triggerer_real.verdicts([phase(blocked_warnings=2, blocked=[(12.0, 0.3), (40.5, 8.2)])], 5.0)
    assert blocked_lines[0] == (
        "runway: 2 blocked-loop warnings, 8.5 s blocked in all, longest 8.20 s, 1 of 1 s or more; "
        "first at 12 s into the phase (each one in the JSON); 0 of them during a garbage collection of the triggerer"
    )
    assert "blocked-loop warnings 0: FAIL" in triggerer_real.verdicts([blocked], 5.0)[1]
    assert "creations 1.00: FAIL" in triggerer_real.verdicts([paid_twice], 5.0)[0]
    assert "all ended ok: FAIL" in triggerer_real.verdicts([failed], 5.0)[0]


def test_phase_table_shows_shares_and_per_video_figures() -> None:
    table = triggerer_real.phase_table([phase(), phase("timedelta", detect_lags=[])], 5.0)
    runway_row, timer_row = table.splitlines()[2:]
    # 2 of 4 CPU seconds: the triggerer's share is half.
    assert " 50 %" in runway_row
    # 2 s over 4 minutes: 500 s per 1,000 wait-minutes.
    assert "500.00" in runway_row
    assert "1.00" in runway_row and "10.00" in runway_row  # creations and reads per video
    assert timer_row.split()[0] == "timedelta" and " - " in timer_row


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the benchmark runs Airflow 3's triggerer only")
def test_the_benchmark_dags_parse_with_one_mapped_task_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dag_file = tmp_path / "triggerer_real_dags.py"
    dag_file.write_text(triggerer_real.DAG_FILE)
    monkeypatch.setenv("TRIGGERER_REAL_COUNT", "7")
    monkeypatch.setenv("TRIGGERER_REAL_POLL_INTERVAL", "5")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("triggerer_real_dags", None)
    module = importlib.import_module("triggerer_real_dags")
    sys.modules.pop("triggerer_real_dags", None)

    dags = {dag.dag_id: dag for dag in vars(module).values() if hasattr(dag, "task_dict")}
    assert set(dags) == {triggerer_real.RUNWAY_DAG_ID, triggerer_real.TIMEDELTA_DAG_ID}
    generate = dags[triggerer_real.RUNWAY_DAG_ID].task_dict["generate"]
    assert len(generate.expand_input.value["prompt"]) == 7
    assert generate.partial_kwargs["deferrable"] is True


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="the bench writes a deferral as Airflow 3.2+'s execution API does")
@pytest.mark.usefixtures("airflow_db")
def test_written_deferral_gives_the_triggerer_the_same_trigger() -> None:
    """The trigger row decodes, as the triggerer reads it, to the arguments the operator's trigger serialized."""
    from airflow.models.trigger import Trigger
    from airflow.providers.common.compat.sdk import TaskDeferred
    from airflow.utils.session import create_session

    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    trigger = RunwayTaskTrigger(
        "task-123", runway_conn_id="runway_default", poll_interval=5.0, end_time=time.time() + 60
    )
    deferred = TaskDeferred(trigger=trigger, method_name="execute_complete", kwargs={"deferred_try": 1})
    ti = SimpleNamespace()
    with create_session() as session:
        triggerer_real._write_deferral(session, ti, deferred)
        row = session.get(Trigger, ti.trigger_id)
        assert row is not None
        classpath, kwargs = row.classpath, row.kwargs

    assert (classpath, kwargs) == trigger.serialize()
    assert ti.state == "deferred" and ti.next_method == "execute_complete"
    assert ti.next_kwargs == {"deferred_try": 1}
    assert isinstance(ti.start_date, datetime) and ti.start_date.tzinfo is timezone.utc


def test_the_timer_phase_defers_airflows_own_trigger_due_at_the_given_length() -> None:
    pytest.importorskip("airflow.providers.standard.triggers.temporal")
    before = time.time()

    deferred, info = triggerer_real._timedelta_deferral(SimpleNamespace(map_index=0), 42.0)

    assert type(deferred.trigger).__name__ == "TimeDeltaTrigger"
    assert deferred.trigger.end_from_trigger is True
    assert before + 42.0 <= info["due"] <= time.time() + 42.0


def test_a_blocked_warning_is_put_down_to_a_collection_only_when_one_ran_in_its_window() -> None:
    passes = [(100.0, 250.0), (200.0, 20.0)]
    assert triggerer_real.explained_by_gc(100.4, 0.3, passes)  # a 250 ms collection in the 0.3 s window
    assert not triggerer_real.explained_by_gc(150.0, 0.3, passes)  # none near
    assert not triggerer_real.explained_by_gc(200.3, 0.5, passes)  # 20 ms cannot explain 0.5 s


def test_gc_passes_are_read_for_the_phase_only(tmp_path: Path) -> None:
    log = tmp_path / "gc.log"
    log.write_text("11 90.000 120 2\n11 100.500 310 2\n12 300.000 80 1\n")
    assert triggerer_real.read_gc_passes(log, 95.0, 200.0) == [(100.5, 310.0)]
    assert triggerer_real.read_gc_passes(tmp_path / "missing.log", 0.0, 1.0) == []
