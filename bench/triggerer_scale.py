"""Triggerer scale: N concurrent Runway waits in one asyncio loop, against the floor and the usual pattern.

The simulator runs in its own process; each (N, variant) runs in a fresh client process so CPU
time and peak RSS belong to that variant alone. Variants, on the very same tasks (the simulator
is reset between runs and replays the same task ids and completion times for its seed):

* ``floor``: a bare aiohttp loop, one shared session, the same status reads and nothing else;
* ``ours``: ``RunwayTaskTrigger.run()`` generators, as the triggerer runs them;
* ``pattern``: what most official triggers do today (dbt Cloud, ``HttpSensorTrigger``): a sync
  connection look-up and a new aiohttp session on every poll, the connection from an environment variable;
* ``pattern-db``: the same with the connection in the metadata database (SQLite, Fernet-encrypted
  password), read through Airflow's ``Connection`` model on every poll, as a triggerer's look-up ends up
  doing (Airflow 2 in the triggerer itself; Airflow 3 in the API server, after a round trip through the
  supervisor that is not counted here, so this is a lower bound).

Usage (from the repository root)::

    python -m bench.triggerer_scale --quick
    python -m bench.triggerer_scale                       # N = 100, 1,000, 5,000
    python -m bench.triggerer_scale --sizes 100,1000 --no-submission
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.common import OUT, SimPhases, SimProcess, connection_env, create_tasks, raise_nofile, run_worker
from bench.stats import (
    GcPauses,
    LoopLagProbe,
    cpu_seconds,
    current_rss_mb,
    fmt,
    format_table,
    peak_rss_mb,
    per_thousand_wait_minutes,
    percentile,
    ratio,
)

VARIANTS = ("floor", "ours", "pattern", "pattern-db")
CONN_ID = "runway_default"


@dataclass(frozen=True)
class Profile:
    """A benchmark set-up: task phases, poll interval, sizes and how trigger starts are spread."""

    phases: SimPhases
    poll_interval: float
    sizes: tuple[int, ...]
    smart_size: int
    #: Waits start spread evenly over this many seconds, as tasks defer one after another.
    stagger: float


FULL = Profile(
    # Runway-like phases (2 s wait, 5 s queueing, 30-150 s generating) at half speed:
    # tasks finish 18.5-78.5 s after creation.
    phases=SimPhases(wait=2.0, queueing=5.0, generating=90.0, jitter=60.0, time_scale=0.5),
    poll_interval=5.0,
    sizes=(100, 1000, 5000),
    smart_size=1000,
    stagger=5.0,
)
QUICK = Profile(
    phases=SimPhases(wait=2.0, queueing=5.0, generating=90.0, jitter=60.0, time_scale=0.1),
    poll_interval=1.0,
    sizes=(50, 300),
    smart_size=300,
    stagger=1.0,
)


# --------------------------------------------------------------------------------------- worker


@dataclass
class WaitPlan:
    """What a worker process waits for and how."""

    variant: str
    url: str
    count: int
    poll_interval: float
    first_poll_delay: float
    stagger: float
    deadline: float  # seconds after the start

    def start_offset(self, index: int) -> float:
        return self.stagger * index / max(1, self.count)


Outcome = tuple[str, float, float, str, str]  # task id, wait started, event time, status, message
WaitFn = Callable[[str, float], Awaitable[Outcome]]


def _outcome(task_id: str, started: float, status: str, message: str = "") -> Outcome:
    return (task_id, started, time.time(), status, "" if status == "success" else message[:300])


async def _wait_ours(plan: WaitPlan, task_id: str, end_time: float) -> Outcome:
    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    started = time.time()
    trigger = RunwayTaskTrigger(
        task_id,
        runway_conn_id=CONN_ID,
        poll_interval=plan.poll_interval,
        end_time=end_time,
        first_poll_delay=plan.first_poll_delay,
    )
    async for event in trigger.run():
        return _outcome(task_id, started, event.payload["status"], event.payload.get("message", ""))
    return _outcome(task_id, started, "error", "the trigger ended without an event")


def _floor_factory(plan: WaitPlan) -> tuple[WaitFn, Callable[[], Awaitable[None]]]:
    import aiohttp

    from airflow_provider_runway.core.results import RUNWAY_STATES, TaskStatus
    from airflow_provider_runway.core.wire import status_path
    from bench.common import API_KEY

    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})
    url = plan.url + status_path("runway")

    async def wait(task_id: str, end_time: float) -> Outcome:
        started = time.time()
        await asyncio.sleep(plan.first_poll_delay)
        while True:
            async with session.get(url, params={"taskId": task_id}) as response:
                body = await response.read()
            status = RUNWAY_STATES.get(json.loads(body)["data"]["state"])
            if status is not None and status.is_terminal:
                return _outcome(task_id, started, "success" if status is TaskStatus.SUCCEEDED else "failed")
            if time.time() >= end_time:
                return _outcome(task_id, started, "timeout", "deadline passed")
            await asyncio.sleep(plan.poll_interval)

    return wait, session.close


class _DbConnection:
    """The fields of a connection read from the metadata database, as ``BaseHook.get_connection`` returns them."""

    def __init__(self, host: str | None, port: int | None, password: str | None, extra: dict[str, Any]) -> None:
        self.host, self.port, self.password, self.extra_dejson = host, port, password, extra


def _setup_db_connection(url: str) -> None:
    """Store the Runway connection in this process's metadata database (only its ``connection`` table)."""
    from airflow.models.connection import Connection
    from airflow.settings import engine
    from airflow.utils.session import create_session

    from bench.common import API_KEY

    table = Connection.__table__
    referenced = {fk.column.table for fk in table.foreign_keys}  # Airflow 3.3's team table
    table.metadata.create_all(bind=engine, tables=[*referenced, table], checkfirst=True)

    with create_session() as session:
        session.add(Connection(conn_id=CONN_ID, conn_type="runway", host=url, password=API_KEY))


def _get_connection_from_db(conn_id: str) -> _DbConnection:
    """One look-up through the metadata database: a query, the ORM row and the password's decryption."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        if conn is None:
            raise LookupError(conn_id)
        return _DbConnection(conn.host, conn.port, conn.password, conn.extra_dejson)


async def _wait_pattern(plan: WaitPlan, task_id: str, end_time: float, *, from_db: bool = False) -> Outcome:
    """Like dbt Cloud's trigger and ``HttpSensorTrigger``: look-up and new session on every poll."""
    import aiohttp
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_provider_runway.core.errors import parse_envelope
    from airflow_provider_runway.core.results import parse_record
    from airflow_provider_runway.core.wire import status_path
    from airflow_provider_runway.hooks.transport import USER_AGENT, build_base_url

    path = status_path("runway")
    started = time.time()
    await asyncio.sleep(plan.first_poll_delay)
    while True:
        conn = _get_connection_from_db(CONN_ID) if from_db else BaseHook.get_connection(CONN_ID)
        headers = {"Authorization": f"Bearer {conn.password}", "User-Agent": USER_AGENT}
        url = build_base_url(conn.host, conn.port, conn.extra_dejson) + path
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(url, params={"taskId": task_id}) as response,
        ):
            body = await response.read()
            http_status = response.status
        task = parse_record("runway", parse_envelope(http_status, body, method="GET", path=path), task_id)
        if task.is_terminal:
            return _outcome(task_id, started, "success" if task.status.value == "succeeded" else "failed")
        if time.time() >= end_time:
            return _outcome(task_id, started, "timeout", "deadline passed")
        await asyncio.sleep(plan.poll_interval)


async def _guarded(wait: WaitFn, task_id: str, delay: float, end_time: float) -> Outcome:
    await asyncio.sleep(delay)
    started = time.time()
    try:
        return await wait(task_id, end_time)
    except Exception as error:
        return _outcome(task_id, started, "error", f"{type(error).__name__}: {error}")


def _waiter(plan: WaitPlan) -> tuple[WaitFn, Callable[[], Awaitable[None]] | None]:
    """The wait coroutine of the plan's variant.

    Every variant first imports what a triggerer process holds anyway (Airflow's task SDK and this
    provider's trigger, Airflow's configuration and secrets backends), so all of them run on the same
    heap: the garbage collector walks the same objects, and the figures differ only by the way of
    waiting. Imports stay outside the measurement.
    """
    import airflow.sdk  # noqa: F401
    from airflow.providers.common.compat.sdk import BaseHook

    import airflow_provider_runway.triggers.runway  # noqa: F401

    # A running triggerer has loaded Airflow's configuration and secrets backends long before: one look-up
    # does that here (about 0.5 s, once), so the first wait that reads a connection does not pay it inside
    # the measurement. The variants that read connections still read them as they would.
    BaseHook.get_connection(CONN_ID)

    if plan.variant == "floor":
        return _floor_factory(plan)
    if plan.variant == "ours":
        return functools.partial(_wait_ours, plan), None
    if plan.variant == "pattern":
        return functools.partial(_wait_pattern, plan), None
    if plan.variant == "pattern-db":
        _setup_db_connection(plan.url)
        _get_connection_from_db(CONN_ID)  # the engine and ORM warmed up, as in a running triggerer
        return functools.partial(_wait_pattern, plan, from_db=True), None
    raise ValueError(f"unknown variant {plan.variant!r}")


async def run_plan(plan: WaitPlan) -> dict[str, Any]:
    """Create the tasks, then run every wait of ``plan`` concurrently in this loop.

    Tasks are created on the same schedule as the waits start, one ``stagger`` earlier, so every
    wait starts on a task of the same age (like a triggerer picking up a deferral a little late)
    whatever the variant's start-up cost. CPU, RSS and lag cover the waits only.
    """
    wait, close = _waiter(plan)
    if os.environ.get("BENCH_GC_FREEZE"):  # diagnostic: keep the import-time heap out of every collection
        gc.freeze()
    task_ids = await create_tasks(plan.url, plan.count, spread=plan.stagger)
    probe, gc_pauses = LoopLagProbe(), GcPauses()
    gc_pauses.start()
    rss_before = current_rss_mb()
    cpu_before = cpu_seconds()
    started = time.time()
    end_time = started + plan.deadline
    probe.start()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_guarded(wait, tid, plan.start_offset(i), end_time) for i, tid in enumerate(task_ids))),
        timeout=plan.deadline + 60,
    )
    cpu = cpu_seconds() - cpu_before
    wall = time.time() - started
    await probe.stop()
    gc_pauses.stop()
    if close is not None:
        await close()
    return {
        "variant": plan.variant,
        "n": len(task_ids),
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak_rss_mb(),
        "lag": probe.summary(),
        # Past the start-up: every wait has started and made its first poll.
        "lag_steady": probe.summary(after=plan.stagger + plan.first_poll_delay + plan.poll_interval),
        "gc": gc_pauses.summary(),
        "outcomes": outcomes,
    }


def worker_main(args: argparse.Namespace) -> int:
    raise_nofile()
    plan = WaitPlan(
        variant=args.variant,
        url=args.url,
        count=args.count,
        poll_interval=args.poll_interval,
        first_poll_delay=args.first_poll_delay,
        stagger=args.stagger,
        deadline=args.deadline,
    )
    profile_to = os.environ.get("BENCH_PROFILE")  # diagnostic: cProfile stats of the worker to this path prefix
    if profile_to:
        import cProfile

        with cProfile.Profile() as profiler:
            result = asyncio.run(run_plan(plan))
        profiler.dump_stats(f"{profile_to}-{plan.variant}-{plan.count}.prof")
    else:
        result = asyncio.run(run_plan(plan))
    Path(args.result).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------- orchestrator


@dataclass
class Row:
    """Figures of one (N, variant) run."""

    n: int
    variant: str
    first_poll_delay: float
    cpu_s: float
    wall_s: float
    wait_min: float
    cpu_per_kwm: float
    rss_peak_mb: float
    rss_growth_mb: float
    requests_per_task: float
    latency_p50_s: float
    latency_p99_s: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_steady_p99_ms: float
    gc_max_ms: float
    gc_total_ms: float
    errors: int
    sim_cpu_s: float
    error_samples: list[str] = field(default_factory=list)
    round_no: int = 1


def _sim_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _worker_env(url: str, variant: str) -> dict[str, str]:
    env = connection_env(url)
    if variant == "pattern-db":  # the password is stored encrypted, as in a deployment with a Fernet key
        from cryptography.fernet import Fernet

        env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tempfile.mkdtemp(prefix='bench-db-')}/airflow.db"
    return env


def measure(
    sim: SimProcess,
    profile: Profile,
    n: int,
    variant: str,
    *,
    first_poll_delay: float = 0.0,
    label: str | None = None,
    round_no: int = 1,
) -> Row:
    """Reset the simulator, create ``n`` tasks, wait for them in a fresh client process, collect figures."""
    from airflow_provider_runway.simulator import SimulatorClient

    client = SimulatorClient(sim.url, timeout=60)
    client.reset()
    name = label or variant
    deadline = profile.stagger + profile.phases.latest + 4 * profile.poll_interval + first_poll_delay + 30
    sim_cpu_before = _sim_cpu(sim.pid)
    result = run_worker(
        "bench.triggerer_scale",
        [
            variant,
            "--url",
            sim.url,
            "--count",
            str(n),
            "--poll-interval",
            str(profile.poll_interval),
            "--first-poll-delay",
            str(first_poll_delay),
            "--stagger",
            str(profile.stagger),
            "--deadline",
            str(deadline),
        ],
        _worker_env(sim.url, variant),
        OUT / f"worker-{name}-{n}{f'-round{round_no}' if round_no > 1 else ''}.log",
        timeout=deadline + 300,
    )
    sim_cpu = _sim_cpu(sim.pid) - sim_cpu_before
    counters = client.counters()
    completes = {info["task_id"]: info["completes_at"] for info in client.tasks()}
    return replace(_row(n, name, first_poll_delay, result, counters, completes, sim_cpu), round_no=round_no)


def _row(
    n: int,
    name: str,
    first_poll_delay: float,
    result: dict[str, Any],
    counters: dict[str, Any],
    completes: dict[str, float | None],
    sim_cpu: float,
) -> Row:
    outcomes: list[Outcome] = [tuple(item) for item in result["outcomes"]]  # type: ignore[misc]
    waited = sum(event - started for _, started, event, _, _ in outcomes)
    latencies = [
        event - float(completes[tid] or math.nan)
        for tid, _, event, status, _ in outcomes
        if status == "success" and completes.get(tid)
    ]
    failures = [f"{tid}: {status}: {message}" for tid, _, _, status, message in outcomes if status != "success"]
    reads = counters.get("task_reads", {})
    return Row(
        n=n,
        variant=name,
        first_poll_delay=first_poll_delay,
        cpu_s=result["cpu_s"],
        wall_s=result["wall_s"],
        wait_min=waited / 60,
        cpu_per_kwm=per_thousand_wait_minutes(result["cpu_s"], waited),
        rss_peak_mb=result["rss_peak_mb"],
        rss_growth_mb=result["rss_peak_mb"] - result["rss_before_mb"],
        requests_per_task=sum(reads.get(tid, 0) for tid, *_ in outcomes) / max(1, len(outcomes)),
        latency_p50_s=percentile(latencies, 50),
        latency_p99_s=percentile(latencies, 99),
        lag_p99_ms=result["lag"]["p99_ms"],
        lag_max_ms=result["lag"]["max_ms"],
        lag_steady_p99_ms=result["lag_steady"]["p99_ms"],
        gc_max_ms=result["gc"]["max_ms"],
        gc_total_ms=result["gc"]["total_ms"],
        errors=len(failures) + (n - len(outcomes)),
        sim_cpu_s=sim_cpu,
        error_samples=failures[:5],
    )


def scale_table(rows: Sequence[Row]) -> str:
    headers = [
        "N",
        "round",
        "variant",
        "CPU s",
        "wait-min",
        "CPU s/1k wait-min",
        "peak RSS MB",
        "RSS growth MB",
        "req/task",
        "detect p50 s",
        "detect p99 s",
        "lag p99 ms",
        "lag max ms",
        "lag p99 steady",
        "GC max ms",
        "errors",
        "sim CPU s",
    ]
    body = [
        [
            fmt(r.n),
            fmt(r.round_no),
            r.variant,
            fmt(r.cpu_s),
            fmt(r.wait_min, 0),
            fmt(r.cpu_per_kwm),
            fmt(r.rss_peak_mb, 0),
            fmt(r.rss_growth_mb, 0),
            fmt(r.requests_per_task, 1),
            fmt(r.latency_p50_s),
            fmt(r.latency_p99_s),
            fmt(r.lag_p99_ms, 1),
            fmt(r.lag_max_ms, 1),
            fmt(r.lag_steady_p99_ms, 1),
            fmt(r.gc_max_ms, 1),
            fmt(r.errors),
            fmt(r.sim_cpu_s),
        ]
        for r in rows
    ]
    return format_table(headers, body, title="Triggerer scale (client process; one asyncio loop per run)")


def _median_rows(rows: Sequence[Row]) -> dict[tuple[int, str], Row]:
    """Per (N, variant), the round with the median CPU per 1,000 wait-minutes (of an even count, the lower middle)."""
    groups: dict[tuple[int, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.n, r.variant), []).append(r)
    return {key: sorted(group, key=lambda r: r.cpu_per_kwm)[(len(group) - 1) // 2] for key, group in groups.items()}


def _per_round(rows: Sequence[Row], n: int, variant: str, base: str) -> list[float]:
    """``variant``'s CPU per wait-minute over ``base``'s, round by round (the two ran minutes apart)."""
    by = {(r.n, r.variant, r.round_no): r for r in rows}
    return [
        ratio(r.cpu_per_kwm, by[(n, base, r.round_no)].cpu_per_kwm)
        for r in rows
        if r.n == n and r.variant == variant and (n, base, r.round_no) in by
    ]


def ratio_table(rows: Sequence[Row], poll_interval: float) -> str:
    by = _median_rows(rows)
    body = []
    for n in sorted({r.n for r in rows}):
        ours, floor = by.get((n, "ours")), by.get((n, "floor"))
        pattern, pattern_db = by.get((n, "pattern")), by.get((n, "pattern-db"))
        if ours is None:
            continue
        vs_floor = ratio(ours.cpu_per_kwm, floor.cpu_per_kwm) if floor else math.nan
        vs_pattern = ratio(ours.cpu_per_kwm, pattern.cpu_per_kwm) if pattern else math.nan
        vs_db = ratio(ours.cpu_per_kwm, pattern_db.cpu_per_kwm) if pattern_db else math.nan
        rounds = _per_round(rows, n, "ours", "floor")
        checks = [
            f"<=1.2x floor: {_verdict(vs_floor <= 1.2)}" if floor else "",
            f">=3x less than pattern-db: {_verdict(vs_db <= 1 / 3)}" if pattern_db else "",
            f"detect p99 <= {poll_interval + 1:g} s: {_verdict(ours.latency_p99_s <= poll_interval + 1)}",
            f"lag p99 < 100 ms: {_verdict(ours.lag_p99_ms < 100)}",
            f"errors 0: {_verdict(all(r.errors == 0 for r in rows if r.n == n and r.variant == 'ours'))}",
        ]
        body.append(
            [
                fmt(n),
                fmt(vs_floor),
                " ".join(fmt(x) for x in rounds) if len(rounds) > 1 else "-",
                fmt(vs_pattern),
                fmt(ratio(1, vs_pattern), 1),
                fmt(vs_db),
                fmt(ratio(1, vs_db), 1),
                fmt(ratio(ours.rss_growth_mb, pattern.rss_growth_mb) if pattern else math.nan),
                "; ".join(c for c in checks if c),
            ]
        )
    headers = [
        "N",
        "CPU ours/floor",
        "ours/floor by round",
        "ours/pattern",
        "pattern/ours",
        "ours/pattern-db",
        "pattern-db/ours",
        "RSS growth ours/pattern",
        "targets (issue 15)",
    ]
    return format_table(
        headers, body, title="Ratios (CPU per 1,000 wait-minutes; the median round of each variant) and targets"
    )


def smart_table(rows: Sequence[Row], poll_interval: float) -> str:
    headers = ["N", "policy", "first poll s", "req/task", "detect p50 s", "detect p99 s", "CPU s/1k wait-min", "errors"]
    body = [
        [
            fmt(r.n),
            r.variant,
            fmt(r.first_poll_delay, 1),
            fmt(r.requests_per_task, 2),
            fmt(r.latency_p50_s),
            fmt(r.latency_p99_s),
            fmt(r.cpu_per_kwm),
            fmt(r.errors),
        ]
        for r in rows
    ]
    return format_table(
        headers, body, title=f"Smart polling (poll interval {poll_interval:g} s; detection target <= interval + 1 s)"
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def plot(rows: Sequence[Row], path: Path) -> bool:
    """CPU per 1,000 wait-minutes and peak RSS against N, one line per variant (needs matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, mem_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"floor": "tab:gray", "ours": "tab:blue", "pattern": "tab:red", "pattern-db": "tab:purple"}
    for variant in VARIANTS:
        points = sorted((r.n, r.cpu_per_kwm, r.rss_peak_mb, r.rss_growth_mb) for r in rows if r.variant == variant)
        if not points:
            continue
        ns, color = [p[0] for p in points], colors[variant]
        cpu_ax.plot(ns, [p[1] for p in points], marker="o", color=color, label=variant)
        mem_ax.plot(ns, [p[2] for p in points], marker="o", color=color, label=f"{variant}: peak RSS")
        mem_ax.plot(ns, [p[3] for p in points], marker=".", linestyle="--", color=color, label=f"{variant}: growth")
    cpu_ax.set(xscale="log", xlabel="concurrent waits (N)", ylabel="CPU s per 1,000 wait-minutes", ylim=(0, None))
    cpu_ax.set_title("Client CPU")
    mem_ax.set(xscale="log", xlabel="concurrent waits (N)", ylabel="MiB", ylim=(0, None))
    mem_ax.set_title("Client memory (peak RSS; growth during the waits)")
    for ax in (cpu_ax, mem_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _print_row(row: Row) -> None:
    print(
        f"  N={row.n:>5} round {row.round_no} {row.variant:<10} cpu {row.cpu_s:6.2f} s  "
        f"req/task {row.requests_per_task:5.1f}  detect p99 {row.latency_p99_s:5.2f} s  "
        f"lag p99 {row.lag_p99_ms:6.1f} ms  errors {row.errors}",
        flush=True,
    )
    for sample in row.error_samples:
        print(f"      {sample}", flush=True)


def orchestrate(args: argparse.Namespace) -> int:
    profile = QUICK if args.quick else FULL
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else profile.sizes
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    phases = profile.phases
    print(
        f"Tasks finish {phases.earliest:.1f}-{phases.latest:.1f} s after creation (uniform); poll interval "
        f"{profile.poll_interval:g} s; waits start spread over {profile.stagger:g} s; sizes {sizes}",
        flush=True,
    )
    rows: list[Row] = []
    smart: list[Row] = []
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with SimProcess(phases, log_path=OUT / "sim.log") as sim:
        print(f"runway-sim at {sim.url} (pid {sim.pid})", flush=True)
        for n in sizes:
            for round_no in range(1, args.rounds + 1):
                # Every other round in reverse order, so a machine speeding up or slowing down over a round
                # does not always favour the same variant.
                for variant in variants if round_no % 2 else variants[::-1]:
                    row = measure(sim, profile, n, variant, round_no=round_no)
                    rows.append(row)
                    _print_row(row)
        if not args.no_smart:
            n = profile.smart_size
            base = next((r for r in rows if r.n == n and r.variant == "ours"), None)
            if base is None:
                base = measure(sim, profile, n, "ours")
            smart.append(base)
            delay = round(max(0.0, phases.earliest - profile.stagger), 1)
            row = measure(sim, profile, n, "ours", first_poll_delay=delay, label="ours+first-poll")
            smart.append(row)
            print(f"  N={n:>5} first poll at {delay:g} s: req/task {row.requests_per_task:.2f}", flush=True)
    text = [f"Run at {stamp}; {sys.platform}, python {sys.version.split()[0]}", scale_table(rows)]
    text.append(ratio_table(rows, profile.poll_interval))
    if smart:
        text.append(smart_table(smart, profile.poll_interval))
    if not args.no_submission:
        from bench.submission_overhead import run as run_submission

        text.append(run_submission(count=200 if args.quick else 1000, rounds=3))
    report = "\n\n".join(text)
    print("\n" + report)
    (OUT / "triggerer_scale.txt").write_text(report + "\n")
    (OUT / "triggerer_scale.json").write_text(
        json.dumps({"profile": asdict(profile), "rows": [asdict(r) for r in rows + smart]}, indent=1)
    )
    plotted = plot(rows, OUT / "triggerer_scale.png")
    print(f"\nwrote {OUT / 'triggerer_scale.txt'}, .json{' and .png' if plotted else ''}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated numbers of concurrent waits (default 100,1000,5000)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, time-scale 0.1, 1 s polls")
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=1,
        help="measure every (N, variant) this many times, alternating the order; ratios use the median round",
    )
    parser.add_argument("--no-smart", action="store_true", help="skip the smart-polling comparison")
    parser.add_argument("--no-submission", action="store_true", help="skip the submission-overhead comparison")
    worker = parser.add_argument_group("worker mode (internal)")
    worker.add_argument("--worker", dest="variant", choices=VARIANTS, help=argparse.SUPPRESS)
    worker.add_argument("--url", help=argparse.SUPPRESS)
    worker.add_argument("--count", type=int, default=100, help=argparse.SUPPRESS)
    worker.add_argument("--poll-interval", type=float, default=5.0, help=argparse.SUPPRESS)
    worker.add_argument("--first-poll-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    worker.add_argument("--stagger", type=float, default=0.0, help=argparse.SUPPRESS)
    worker.add_argument("--deadline", type=float, default=600.0, help=argparse.SUPPRESS)
    worker.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:
        return worker_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
