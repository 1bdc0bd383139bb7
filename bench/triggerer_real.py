"""1,000 waits on Airflow's own triggerer: this provider's trigger next to Airflow's ``TimeDeltaTrigger``.

Starts ``runway-sim`` and Airflow 3's own processes on loopback (api-server, scheduler, dag-processor and
``airflow triggerer`` with its default capacity of 1,000; SQLite, throwaway ``AIRFLOW_HOME``, as in
``tests/e2e/conftest.py``), then runs two phases on the same processes:

* ``runway``: 1,000 ``RunwayGenerateOperator(deferrable=True)`` task instances deferred to the triggerer,
  each on its own generation in the simulator, ended there by the trigger;
* ``timedelta``: 1,000 ``TimeDeltaTrigger(end_from_trigger=True)`` waits of the same lengths (what a
  deferral costs with no HTTP at all).

The task instances are deferred by one process (``--defer``), not by 1,000 task processes: it runs the real
operator's ``execute`` up to its ``TaskDeferred`` for each mapped task instance (create, the read before
deferring, the trigger's arguments), and writes the ``trigger`` row and the task instance's deferred state
the way Airflow's execution API does for a deferring task (``PATCH /execution/task-instances/{id}/state``).
Everything after that is Airflow's own: the triggerer picks the triggers from the table, runs them in its
runner process, looks the connection up through its supervisor and the API server (the connection is in
the metadata database, not in the environment), heartbeats, and hands each event to its supervisor, which
ends the task instance; the scheduler ends the DAG run.

Per phase it prints the triggerer's CPU seconds per 1,000 wait-minutes, the "async thread was blocked"
warnings Airflow's watchdog logged, detection lag p50/p99 (the generation's end, or the timer's moment, to
the first read that saw it and to the task instance's end), creations and reads per video, and the CPU
of every other process over the same window (their share).

Run from the repository root with the project's test environment (Airflow 3)::

    .nox/tests-3-3-2/bin/python -m bench.triggerer_real              # 1,000 waits per phase (about 10 minutes)
    .nox/tests-3-3-2/bin/python -m bench.triggerer_real --count 50 --time-scale 0.2   # smoke run

(``bash scripts/test.sh -s tests-3.3.2 -- tests/unit/bench`` builds that environment on a clean clone.)
The table goes to ``bench/out/triggerer_real.txt``, every figure to ``bench/out/triggerer_real.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
API_KEY = "bench-triggerer-real-key-0001"
CONN_ID = "runway_default"
RUNWAY_DAG_ID = "triggerer_real_runway"
TIMEDELTA_DAG_ID = "triggerer_real_timedelta"
PHASES = ("runway", "timedelta")
#: The line Airflow's triggerer logs when its event loop did not wake for longer than its threshold.
BLOCKED_WARNING = "async thread was blocked"
#: Task instances deferred per database transaction (a triggerer picks them up batch by batch).
DEFER_BATCH = 50
#: Default deferrals per second: faster than an executor's task processes defer a mapped batch (each process
#: takes about a second, a few dozen run at once), yet no longer a thousand in one instant for the triggerer
#: to create in one turn of its loop (which blocked it 1.3-1.9 s, the ``timedelta`` phase as much as ours).
DEFER_RATE = 100.0
#: Seconds between two looks at the task instances while a phase runs.
OBSERVE_INTERVAL = 2.0

DAG_FILE = '''\
"""The DAGs ``bench/triggerer_real.py`` defers; their task instances never run on a worker."""

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

COUNT = int(os.environ["TRIGGERER_REAL_COUNT"])
POLL_INTERVAL = float(os.environ["TRIGGERER_REAL_POLL_INTERVAL"])
MULTIPLE_OUTPUTS = os.environ.get("TRIGGERER_REAL_MULTIPLE_OUTPUTS", "True") == "True"
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG(dag_id="triggerer_real_runway", schedule=None, start_date=START, catchup=False) as runway_dag:
    RunwayGenerateOperator.partial(
        task_id="generate",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        multiple_outputs=MULTIPLE_OUTPUTS,
        durable=False,  # the deferrals here are written by the bench: no resume record is made anyway
    ).expand(prompt=[f"Triggerer shot {n}: a lighthouse at dusk, slow pan" for n in range(COUNT)])

with DAG(dag_id="triggerer_real_timedelta", schedule=None, start_date=START, catchup=False) as timedelta_dag:
    TimeDeltaSensor.partial(task_id="wait", deferrable=True, end_from_trigger=True).expand(
        delta=[timedelta(seconds=60 + n % 7) for n in range(COUNT)]
    )
'''


# -- figures ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals ``(start, end)`` open at one instant (an end at the same instant as a start closes first)."""
    edges = sorted(edge for start, end in intervals for edge in ((start, 1), (end, -1)))
    open_now = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        open_now += step
        peak = max(peak, open_now)
    return peak


def count_lines(text: str, needle: str) -> int:
    """Lines of ``text`` containing ``needle``, case-insensitively."""
    needle = needle.lower()
    return sum(needle in line.lower() for line in text.splitlines())


BLOCKED_LINE = re.compile(r"^(\S+Z) .*async thread was blocked for ([0-9.]+) seconds")


def blocked_events(text: str) -> list[tuple[float, float]]:
    """``(epoch, seconds blocked)`` of each blocked-loop warning in a triggerer log."""
    found = []
    for line in text.splitlines():
        match = BLOCKED_LINE.match(line)
        if match:
            found.append(
                (datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp(), float(match.group(2)))
            )
    return found


def read_gc_passes(path: Path, since: float, until: float) -> list[tuple[float, float]]:
    """``(epoch, milliseconds)`` of the triggerer's long collections between ``since`` and ``until`` (bench/gcwatch)."""
    if not path.exists():
        return []
    passes = []
    for line in path.read_text().splitlines():
        _pid, at, ms, _generation = line.split()
        if since <= float(at) <= until:
            passes.append((float(at), float(ms)))
    return passes


def explained_by_gc(warned_at: float, seconds: float, gc_passes: Sequence[tuple[float, float]]) -> bool:
    """Whether a collection of at least a tenth of the blocked time ran in the blocked window.

    Airflow logs the warning when its watchdog wakes up, so the window is the ``seconds`` before the line's time
    (one second of slack for the log's clock).
    """
    start = warned_at - seconds - 1.0
    return any(start <= at <= warned_at + 1.0 and ms / 1000 >= seconds / 10 for at, ms in gc_passes)


def db_time(value: str | None) -> float | None:
    """Epoch seconds of a timestamp as SQLite holds Airflow's ``UtcDateTime`` (UTC, with or without offset)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def per_thousand_wait_minutes(cpu_seconds: float, wait_seconds: float) -> float:
    """CPU seconds per 1,000 minutes of waiting."""
    return cpu_seconds / (wait_seconds / 60.0) * 1000.0 if wait_seconds > 0 else float("nan")


@dataclass
class PhaseResult:
    """Figures of one phase: ``count`` deferred waits of one kind on the running triggerer."""

    phase: str
    count: int
    ended: int
    states: dict[str, int]
    wall_s: float
    wait_seconds: float
    peak_concurrent: int
    cpu_s: dict[str, float]
    blocked_warnings: int
    #: The triggerer's largest resident memory (its processes summed) sampled during the phase.
    triggerer_rss_mb: float
    #: Each blocked-loop warning: seconds after the phase started, and how long the loop was blocked.
    blocked: list[tuple[float, float]] = field(default_factory=list)
    #: The triggerer's garbage-collection passes of 50 ms or more: seconds after the phase started, milliseconds.
    gc_passes: list[tuple[float, float]] = field(default_factory=list)
    #: How many blocked-loop warnings came while a collection of at least a tenth of their length ran.
    blocked_by_gc: int = 0
    #: The due time (generation's end, or the timer's moment) to the first read that saw it (runway only).
    detect_lags: list[float] = field(default_factory=list)
    #: The due time to the task instance's end (the triggerer's event handled).
    end_lags: list[float] = field(default_factory=list)
    creations: int = 0
    reads: int = 0
    #: The deferring process (the shortcut for 1,000 task processes): its wall time and CPU seconds.
    defer_wall_s: float = 0.0
    defer_cpu_s: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def triggerer_per_kwm(self) -> float:
        return per_thousand_wait_minutes(self.cpu_s.get("triggerer", 0.0), self.wait_seconds)

    def share(self, component: str) -> float:
        """``component``'s part of the CPU all Airflow processes and the simulator used in the phase."""
        total = sum(self.cpu_s.values())
        return self.cpu_s.get(component, 0.0) / total if total else float("nan")


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(widths[i]) for i, cell in enumerate(row)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


COMPONENTS = ("triggerer", "scheduler", "api-server", "dag-processor", "runway-sim")


def phase_table(results: Sequence[PhaseResult], poll_interval: float) -> str:
    header = [
        "phase",
        "waits",
        "ended ok",
        "peak concurrent",
        "wait-min",
        "triggerer CPU s",
        "CPU s/1k wait-min",
        "blocked warnings",
        "detect p50 s",
        "detect p99 s",
        "end p50 s",
        "end p99 s",
        "creations/video",
        "reads/video",
        "triggerer RSS MB",
        *(f"{name} share" for name in COMPONENTS),
        "load 1 min",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.phase,
                str(r.count),
                str(r.states.get("success", 0)),
                str(r.peak_concurrent),
                fmt(r.wait_seconds / 60, 0),
                fmt(r.cpu_s.get("triggerer"), 2),
                fmt(r.triggerer_per_kwm, 2),
                str(r.blocked_warnings),
                fmt(percentile(r.detect_lags, 0.5), 2),
                fmt(percentile(r.detect_lags, 0.99), 2),
                fmt(percentile(r.end_lags, 0.5), 2),
                fmt(percentile(r.end_lags, 0.99), 2),
                fmt(r.creations / r.count, 2) if r.phase == "runway" else "-",
                fmt(r.reads / r.count, 2) if r.phase == "runway" else "-",
                fmt(r.triggerer_rss_mb, 0),
                *(f"{100 * r.share(name):.0f} %" for name in COMPONENTS),
                f"{r.load[0]:.1f}",
            ]
        )
    return render_table(header, rows)


def verdicts(results: Sequence[PhaseResult], poll_interval: float) -> list[str]:
    """The issue's targets, each with PASS or FAIL, and the ratio of the two phases."""
    by_phase = {r.phase: r for r in results}
    lines = []
    runway, timer = by_phase.get("runway"), by_phase.get("timedelta")
    if runway and timer:
        ratio = runway.triggerer_per_kwm / timer.triggerer_per_kwm
        lines.append(
            f"triggerer CPU per 1,000 wait-minutes, runway / timedelta: {ratio:.2f} "
            f"(runway {runway.triggerer_per_kwm:.2f} s, timedelta {timer.triggerer_per_kwm:.2f} s; "
            f"runway - timedelta {runway.triggerer_per_kwm - timer.triggerer_per_kwm:.2f} s: what the HTTP reads add, "
            "within the run's noise when negative)"
        )
    for r in results:
        if r.blocked:
            lengths = [seconds for _, seconds in r.blocked]
            lines.append(
                f"{r.phase}: {len(lengths)} blocked-loop warnings, {sum(lengths):.1f} s blocked in all, longest "
                f"{max(lengths):.2f} s, {sum(s >= 1.0 for s in lengths)} of 1 s or more; "
                f"first at {r.blocked[0][0]:g} s into the phase (each one in the JSON); {r.blocked_by_gc} of them "
                f"during a garbage collection of the triggerer"
            )
        if r.gc_passes:
            longest = max(ms for _, ms in r.gc_passes)
            lines.append(
                f"{r.phase}: the triggerer's collections of 50 ms or more: {len(r.gc_passes)}, longest {longest:.0f} ms"
            )
        checks = [
            ("blocked-loop warnings 0", r.blocked_warnings == 0),
            ("all ended ok", r.states == {"success": r.count}),
        ]
        if r.phase == "runway":
            p99 = percentile(r.detect_lags, 0.99)
            checks.append(
                (f"detect p99 <= poll + 1 s ({poll_interval + 1:g} s)", p99 is not None and p99 <= poll_interval + 1)
            )
            checks.append(("creations 1.00", r.creations == r.count))
        lines.append(f"{r.phase}: " + "; ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in checks))
    return lines


# -- the simulator ----------------------------------------------------------------------------------------


def sim_config(time_scale: float, seed: int) -> Any:
    """Runway-like phases: 2 s wait, 5 s queueing, 30-150 s generating (simulated), no account limits."""
    from airflow_provider_runway.simulator.config import SimulatorConfig

    return SimulatorConfig(
        wait_seconds=2.0,
        queueing_seconds=5.0,
        generating_seconds=90.0,
        generating_jitter=60.0,
        time_scale=time_scale,
        concurrency_limit=0,
        rate_limit_creates=0,
        starting_credits=10**12,
        seed=seed,
    )


def serve_sim(url_file: Path, time_scale: float, seed: int) -> None:
    """Run ``runway-sim`` in this process until SIGTERM, recording when a read first saw each task end."""
    import asyncio

    from airflow_provider_runway.simulator.cli import serve
    from airflow_provider_runway.simulator.server import RunwaySimulator
    from bench.common import raise_nofile
    from bench.makespan import instrument

    raise_nofile()
    sim = RunwaySimulator(sim_config(time_scale, seed))
    instrument(sim)
    asyncio.run(serve(sim, "127.0.0.1", 0, on_listening=url_file.write_text))


# -- the deferring process (the shortcut for 1,000 task processes) ----------------------------------------


class _StubTaskInstance:
    """What the operator reads from ``context["ti"]`` before it defers; XComs are kept, not stored."""

    def __init__(self, row: Any) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = row.dag_id, row.run_id, row.task_id, row.map_index
        self.try_number = 1
        self.start_date = datetime.now(timezone.utc)
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _runway_deferral(row: Any, poll_interval: float, multiple_outputs: bool) -> tuple[Any, dict[str, Any]]:
    """Run the real operator's ``execute`` for one task instance up to its ``TaskDeferred``."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_runway.operators.runway import RunwayGenerateOperator

    operator = RunwayGenerateOperator(
        task_id=row.task_id,
        prompt=f"Triggerer shot {row.map_index}: a lighthouse at dusk, slow pan",
        duration=5,
        quality="720p",
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=poll_interval,
        durable=False,
        multiple_outputs=multiple_outputs,
    )
    try:
        operator.execute({"ti": _StubTaskInstance(row)})  # type: ignore[typeddict-item]
    except TaskDeferred as deferred:
        return deferred, {"sim_task_id": deferred.trigger.runway_task_id}
    raise RuntimeError(f"map index {row.map_index}: the operator did not defer")


def _timedelta_deferral(row: Any, seconds: float) -> tuple[Any, dict[str, Any]]:
    from airflow.providers.common.compat.sdk import TaskDeferred
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

    trigger = TimeDeltaTrigger(timedelta(seconds=seconds), end_from_trigger=True)
    deferred = TaskDeferred(trigger=trigger, method_name="execute_complete")
    return deferred, {"due": trigger.moment.timestamp()}


def _write_deferral(session: Any, ti: Any, deferred: Any) -> None:
    """The ``trigger`` row and deferred state, as the execution API's state route writes a deferring task."""
    from airflow.models.trigger import Trigger
    from airflow.sdk.serde import serialize
    from airflow.utils.state import TaskInstanceState

    classpath, trigger_kwargs = deferred.trigger.serialize()
    row = Trigger(classpath=classpath, kwargs={})
    row.encrypted_kwargs = json.dumps(serialize(trigger_kwargs))
    session.add(row)
    session.flush()
    ti.state = TaskInstanceState.DEFERRED
    ti.trigger_id = row.id
    ti.next_method = deferred.method_name
    ti.next_kwargs = serialize(deferred.kwargs or {})
    ti.trigger_timeout = None
    ti.try_number = 1
    ti.start_date = datetime.now(timezone.utc)


def defer_main(args: argparse.Namespace) -> int:
    """Defer every task instance of the run, ``DEFER_BATCH`` per transaction; write what each waits for."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    from bench.common import raise_nofile

    raise_nofile()
    started, cpu_started = time.monotonic(), time.process_time()
    durations = json.loads(Path(args.durations).read_text()) if args.durations else {}
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == args.dag_id, DagRun.run_id == args.run_id))
        assert run is not None, f"no DAG run {args.run_id}"
        run.state, run.start_date = DagRunState.RUNNING, datetime.now(timezone.utc)
        keys = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index)
            .where(TaskInstance.dag_id == args.dag_id, TaskInstance.run_id == args.run_id)
            .order_by(TaskInstance.map_index)
        ).all()
    waits: dict[str, dict[str, Any]] = {}
    paced_from = time.monotonic()
    for first in range(0, len(keys), DEFER_BATCH):
        batch = keys[first : first + DEFER_BATCH]
        time.sleep(max(0.0, paced_from + first / float(args.defer_rate) - time.monotonic()))
        # The HTTP work of each deferral first, outside any transaction: SQLite has one writer at a time, and
        # a write lock held across 50 creates starved the triggerer's own writes ("database is locked").
        deferrals = {}
        for task_id, map_index in batch:
            row = SimpleNamespace(dag_id=args.dag_id, run_id=args.run_id, task_id=task_id, map_index=map_index)
            if args.phase == "runway":
                deferrals[map_index], waits[str(map_index)] = _runway_deferral(
                    row, args.poll_interval, args.multiple_outputs == "True"
                )
            else:
                deferrals[map_index], waits[str(map_index)] = _timedelta_deferral(row, float(durations[str(map_index)]))
        with create_session() as session:
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == args.dag_id,
                    TaskInstance.run_id == args.run_id,
                    TaskInstance.map_index.in_(list(deferrals)),
                )
            ):
                _write_deferral(session, ti, deferrals[ti.map_index])
        deferred_at = time.time()  # committed: the triggerer may pick these up from now on
        for _, map_index in batch:
            waits[str(map_index)]["deferred_at"] = deferred_at
    result = {"waits": waits, "wall_s": time.monotonic() - started, "cpu_s": time.process_time() - cpu_started}
    Path(args.result).write_text(json.dumps(result))
    return 0


# -- the orchestrator -------------------------------------------------------------------------------------


def task_instances(db_path: Path, dag_id: str, run_id: str) -> list[tuple[int, str | None, float | None]]:
    """``(map_index, state, end epoch)`` of every task instance of the run, read from SQLite directly."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT map_index, state, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchall()
    return [(int(index), state, db_time(end)) for index, state, end in rows]


class RssSampler(threading.Thread):
    """Largest summed RSS of a process group, sampled every ``OBSERVE_INTERVAL``."""

    def __init__(self, process: Any) -> None:
        super().__init__(daemon=True)
        self.process, self.peak_mb = process, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._stop_event.is_set():
            total = 0
            for pid in self.process.group_members():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += psutil.Process(pid).memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop_event.wait(OBSERVE_INTERVAL)

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=10)
        return self.peak_mb


def cpu_by_component(processes: Mapping[str, Any]) -> dict[str, float]:
    return {name: process.cpu_seconds() for name, process in processes.items()}


def run_phase(
    phase: str,
    stack: Any,
    processes: Mapping[str, Any],
    sim: Any,
    args: argparse.Namespace,
    tmp: Path,
    durations: Mapping[str, float],
) -> tuple[PhaseResult, dict[str, float]]:
    """Defer ``args.count`` task instances of ``phase``'s DAG and wait until each has ended; measure it."""
    from tests.e2e.conftest import wait_until

    dag_id = RUNWAY_DAG_ID if phase == "runway" else TIMEDELTA_DAG_ID
    run_id = f"triggerer_real_{phase}_{int(time.time())}"
    stack.trigger(dag_id, run_id, datetime.now(timezone.utc), {})
    db_path = stack.home / "airflow.db"
    wait_until(lambda: len(task_instances(db_path, dag_id, run_id)) == args.count, 120, f"{args.count} TIs of {run_id}")
    durations_file = tmp / f"durations-{phase}.json"
    durations_file.write_text(json.dumps(durations))
    result_file = tmp / f"deferred-{phase}.json"
    log_before = stack.components["triggerer"].read_log()
    counters_before = sim.counters()
    cpu_before = cpu_by_component(processes)
    rss = RssSampler(stack.components["triggerer"])
    rss.start()
    started = time.time()
    env = dict(stack.env)
    env["AIRFLOW_CONN_RUNWAY_DEFAULT"] = json.dumps({"conn_type": "runway", "host": sim.url, "password": API_KEY})
    command = [
        sys.executable, "-m", "bench.triggerer_real", "--defer", phase, "--dag-id", dag_id, "--run-id", run_id,
        "--multiple-outputs", str(not args.single_output), "--poll-interval", str(args.poll_interval),
        "--durations", str(durations_file), "--defer-rate", str(args.defer_rate),
        "--result", str(result_file),
    ]  # fmt: skip
    import subprocess

    with open(tmp / f"defer-{phase}.log", "w") as log:
        done = subprocess.run(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the deferring process failed; see {tmp / f'defer-{phase}.log'}")
    deferred = json.loads(result_file.read_text())
    stack.unpause(dag_id)  # the scheduler ends the DAG run once the triggerer has ended every task instance
    deadline = time.monotonic() + args.phase_timeout

    def all_ended() -> list[tuple[int, str | None, float | None]] | None:
        stack.assert_alive()
        rows = task_instances(db_path, dag_id, run_id)
        return (
            rows
            if all(state not in (None, "deferred", "scheduled", "queued", "running") for _, state, _ in rows)
            else None
        )

    rows: list[tuple[int, str | None, float | None]] | None = None
    while time.monotonic() < deadline and not (rows := all_ended()):
        time.sleep(OBSERVE_INTERVAL)
    rows = rows or task_instances(db_path, dag_id, run_id)
    ended_at = time.time()
    cpu_after = cpu_by_component(processes)
    peak_rss = rss.stop()
    counters_after = sim.counters()
    log_text = stack.components["triggerer"].read_log()[len(log_before) :]
    gc_passes = read_gc_passes(tmp / "triggerer-gc.log", started, ended_at)
    blocked = blocked_events(log_text)
    stack.request("PATCH", f"/dags/{dag_id}", {"is_paused": True})

    waits = deferred["waits"]
    due: dict[str, float] = {}
    if phase == "runway":
        tasks = {t["task_id"]: t for t in sim.tasks()}
        due = {index: float(tasks[w["sim_task_id"]]["completes_at"]) for index, w in waits.items()}
        from bench.makespan import detections

        seen = detections(sim.url)
        detect_lags = [seen[w["sim_task_id"]] - due[i] for i, w in waits.items() if w["sim_task_id"] in seen]
    else:
        due = {index: float(w["due"]) for index, w in waits.items()}
        detect_lags = []
    ends = {str(index): end for index, _, end in rows if end is not None}
    intervals = [(waits[i]["deferred_at"], ends[i]) for i in waits if i in ends]
    states: dict[str, int] = {}
    for _, state, _ in rows:
        states[str(state)] = states.get(str(state), 0) + 1

    def delta(key: str) -> int:
        return int(counters_after["requests"].get(key, 0)) - int(counters_before["requests"].get(key, 0))

    result = PhaseResult(
        phase=phase,
        count=args.count,
        ended=len(ends),
        states=states,
        wall_s=ended_at - started,
        wait_seconds=sum(end - start for start, end in intervals),
        peak_concurrent=peak_concurrency(intervals),
        cpu_s={name: cpu_after[name] - cpu_before[name] for name in cpu_before},
        blocked_warnings=count_lines(log_text, BLOCKED_WARNING),
        triggerer_rss_mb=peak_rss,
        blocked=[(round(at - started, 1), seconds) for at, seconds in blocked],
        gc_passes=[(round(at - started, 1), ms) for at, ms in gc_passes],
        blocked_by_gc=sum(explained_by_gc(at, seconds, gc_passes) for at, seconds in blocked),
        detect_lags=detect_lags,
        end_lags=[ends[i] - due[i] for i in due if i in ends],
        creations=int(counters_after["tasks_total"]) - int(counters_before["tasks_total"]),
        reads=delta("record-detail"),
        defer_wall_s=float(deferred["wall_s"]),
        defer_cpu_s=float(deferred["cpu_s"]),
        load=os.getloadavg(),
    )
    # The next phase waits as long as this one: each timer lasts from its deferral to its generation's end.
    next_durations = {i: max(0.0, due[i] - waits[i]["deferred_at"]) for i in due}
    return result, next_durations


def start_sim(registry: Any, tmp: Path, time_scale: float, seed: int) -> tuple[Any, Any]:
    from airflow_provider_runway.simulator.client import SimulatorClient
    from tests.e2e.conftest import ManagedProcess, wait_until

    url_file = tmp / "sim-url"
    argv = [sys.executable, "-m", "bench.triggerer_real", "--serve-sim", str(url_file), "--time-scale", str(time_scale),
            "--seed", str(seed)]  # fmt: skip
    process = registry.add(ManagedProcess("runway-sim", argv, tmp / "runway-sim.log", dict(os.environ), REPO).start())

    def listening() -> str | None:
        assert process.alive(), f"runway-sim exited:\n{process.tail()}"
        return url_file.read_text() if url_file.exists() and url_file.read_text() else None

    url = str(wait_until(listening, 60, "runway-sim to listen", interval=0.1))
    return process, SimulatorClient(url, timeout=60)


def idle_cpu(processes: Mapping[str, Any], seconds: float) -> dict[str, float]:
    """CPU seconds per minute of each process while nothing is deferred (heartbeats, loops, polls)."""
    before = cpu_by_component(processes)
    time.sleep(seconds)
    after = cpu_by_component(processes)
    return {name: (after[name] - before[name]) * 60 / seconds for name in before}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triggerer_real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="deferred waits per phase (default 1,000)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="the Runway trigger's poll interval (s)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulator seconds to real ones (default 1)")
    parser.add_argument(
        "--phases", default="runway,timedelta", help="phases in order (runway first: it sets the lengths)"
    )
    parser.add_argument("--phase-timeout", type=float, default=900.0, help="most seconds a phase may take")
    parser.add_argument(
        "--defer-rate", type=float, default=DEFER_RATE, help=f"deferrals per second (default {DEFER_RATE:g})"
    )
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measured before the phases")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temp AIRFLOW_HOME and logs")
    parser.add_argument("--serve-sim", metavar="URL_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--defer", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument(
        "--single-output",
        action="store_true",
        help="the operator with multiple_outputs=False: 2 XComs per ended task instead of one per result key",
    )
    for hidden in ("--dag-id", "--run-id", "--multiple-outputs", "--durations", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sim:
        serve_sim(Path(args.serve_sim), args.time_scale, args.seed)
        return 0
    if args.defer:
        args.phase = args.defer
        return defer_main(args)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not set(phases) <= set(PHASES) or not phases or phases[0] != "runway":
        parser.error(f"--phases: {PHASES} in any number, starting with 'runway'; got {args.phases!r}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    from airflow import __version__ as airflow_version
    from packaging.version import Version

    # The deferrals are written as Airflow 3.2+'s execution API writes them (airflow.sdk.serde).
    if Version(Version(airflow_version).base_version) < Version("3.2.0"):
        print(f"bench.triggerer_real needs Airflow 3.2 or later; this is Airflow {airflow_version}")
        return 2
    from bench.common import raise_nofile
    from tests.e2e.conftest import Airflow3Stack, ProcessRegistry

    raise_nofile()
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1,localhost"]))
    tmp = Path(tempfile.mkdtemp(prefix="triggerer-real-"))
    dags = tmp / "dags"
    dags.mkdir()
    (dags / "triggerer_real_dags.py").write_text(DAG_FILE)
    registry = ProcessRegistry()
    results: list[PhaseResult] = []
    idle: dict[str, float] = {}
    started = time.monotonic()
    try:
        sim_process, sim = start_sim(registry, tmp, args.time_scale, args.seed)
        stack = Airflow3Stack(
            registry,
            home=tmp / "airflow",
            dags_folder=dags,
            extra_env={
                "TRIGGERER_REAL_COUNT": str(args.count),
                "TRIGGERER_REAL_POLL_INTERVAL": str(args.poll_interval),
                "TRIGGERER_REAL_MULTIPLE_OUTPUTS": str(not args.single_output),
                "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, args.count)),
                # Airflow's defaults, not the end-to-end suite's 1 s heartbeat and 5 s health threshold (set there
                # so a killed triggerer's triggers are adopted quickly): a deployment's triggerer as it runs.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "5",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
                # bench/gcwatch: the triggerer's garbage-collection passes of 50 ms or more, to RUNWAY_BENCH_GC_LOG.
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(REPO), str(REPO / "bench" / "gcwatch"), os.environ.get("PYTHONPATH")])
                ),
                "RUNWAY_BENCH_GC_LOG": str(tmp / "triggerer-gc.log"),
            },
        )
        stack.start()
        # In the metadata database, so each trigger's look-up goes through the triggerer's supervisor and the
        # API server, as in a deployment without the connection in the triggerer's environment.
        stack.request("POST", "/connections", {"connection_id": CONN_ID, "conn_type": "runway", "host": sim.url,
                                                "password": API_KEY})  # fmt: skip
        for dag_id in (RUNWAY_DAG_ID, TIMEDELTA_DAG_ID):
            stack.wait_for_dag(dag_id, "triggerer_real_dags.py", timeout=180)
        processes = {**{name: stack.components[name] for name in COMPONENTS if name in stack.components},
                     "runway-sim": sim_process}  # fmt: skip
        print(
            f"Airflow {airflow_version} healthy in {time.monotonic() - started:.0f} s; idle {args.idle:g} s", flush=True
        )
        idle = idle_cpu(processes, args.idle)
        durations: dict[str, float] = {}
        for phase in phases:
            result, next_durations = run_phase(phase, stack, processes, sim, args, tmp, durations)
            durations = durations or next_durations
            results.append(result)
            print(
                f"  {phase}: {result.states}, {result.wall_s:.0f} s, triggerer CPU {result.cpu_s['triggerer']:.1f} s, "
                f"deferring took {result.defer_wall_s:.0f} s",
                flush=True,
            )
    finally:
        registry.stop_all()
        if results:
            report(results, idle, args, airflow_version, started)
        if args.keep:
            print(f"logs and AIRFLOW_HOME kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if results and all(r.states == {"success": r.count} for r in results) else 1


def report(
    results: list[PhaseResult], idle: Mapping[str, float], args: argparse.Namespace, version: str, started: float
) -> None:
    header = (
        f"Real triggerer, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Airflow {version}, SQLite, "
        f"triggerer default capacity; {args.count} waits per phase, poll {args.poll_interval:g} s, "
        f"multiple_outputs={not args.single_output}; deferrals paced at {args.defer_rate:g}/s; runway-sim "
        f"2 s wait + 5 s queueing + 30-150 s generating x {args.time_scale:g}; {os.cpu_count()} CPUs; "
        f"whole benchmark {time.monotonic() - started:.0f} s"
    )
    idle_line = "idle CPU s per minute before the phases: " + ", ".join(f"{k} {v:.2f}" for k, v in idle.items())
    cpu_rows = [
        [r.phase, *(fmt(r.cpu_s.get(name), 1) for name in COMPONENTS), fmt(r.defer_cpu_s, 1), fmt(r.defer_wall_s, 0)]
        for r in results
    ]
    cpu_table = render_table(
        ["phase", *(f"{name} CPU s" for name in COMPONENTS), "deferring proc CPU s", "deferring wall s"], cpu_rows
    )
    legend = (
        "CPU s/1k wait-min: the triggerer's CPU (its supervisor and runner processes) over the phase, per 1,000 "
        "minutes of waiting (each wait from its deferral's commit to its task instance's end); detect: the "
        "generation's end to the first read that saw it; end: the generation's end (timedelta: the timer's "
        "moment) to the task instance's end_date set by the triggerer; share: of the CPU all listed processes "
        "used in the phase (SQLite runs inside each process: the database has no process of its own); "
        f"blocked warnings: triggerer log lines containing {BLOCKED_WARNING!r}"
    )
    text = "\n\n".join(
        [header, phase_table(results, args.poll_interval), cpu_table, idle_line,
         "\n".join(verdicts(results, args.poll_interval)), legend]
    )  # fmt: skip
    print("\n" + text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "triggerer_real.txt").write_text(text + "\n")
    (OUT / "triggerer_real.json").write_text(
        json.dumps({"idle": idle, "phases": [asdict(r) for r in results]}, indent=2, default=str)
    )


if __name__ == "__main__":
    raise SystemExit(main())
