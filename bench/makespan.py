"""Batch makespan on real Airflow processes: this provider's deferrable operator against the http provider route.

Starts ``runway-sim`` (fixed generations: 2 s queueing + 20 s generating, 10 concurrent per account) and
Airflow 3's own processes on loopback in a throwaway ``AIRFLOW_HOME`` on SQLite (api-server, scheduler with
the LocalExecutor and 16 worker slots, dag-processor, triggerer; ``tests/e2e/conftest.py``), then runs the
same batch of generations through a pool of 10 slots that counts deferred tasks, alternating two DAGs
(``bench/makespan_dags/``, one file per route, so each task process parses only its own DAG's imports):

* ``A``: ``RunwayGenerateOperator(deferrable=True, poll_interval=5)`` mapped over the prompts;
* ``B``: a mapped task group of ``HttpOperator`` (create) and ``HttpSensor`` (poke every 5 s on
  ``record-detail``), which holds a worker slot for the whole wait;
* ``C`` (opt-in, ``--variants ACB``): as ``A`` with ``end_in_triggerer=False``: each task resumes on a
  worker to finish (the provider before issue 15), to show what ending in the triggerer saves.

Per run it prints the makespan (the DAG run's start to end), its ratio to the physical limit
``ceil(videos / 10) x 22 s``, worker-slot seconds, reads and creations per video, and where the time
goes per video (medians): creation after a pool slot frees, the generation itself, poll lag (the end of the
generation to the first read that sees it), and the detection to the end of the task instance.

Run from the repository root with the project's test environment (Airflow 3.3)::

    .nox/tests-3-3-2/bin/python -m bench.makespan            # 30 videos, A/B/A/B
    .nox/tests-3-3-2/bin/python -m bench.makespan --quick    # 10 videos, A/B
    .nox/tests-3-3-2/bin/python -m bench.makespan --runs 4   # A/B/A/B/A/B/A/B
    .nox/tests-3-3-2/bin/python -m bench.makespan --variants ACB   # A/C/B/A/C/B
    .nox/tests-3-3-2/bin/python -m bench.makespan --variants A --pools 10,20   # A, then A through a pool of 20

With ``--pools 10,20`` each variant also runs through a pool of 20 against the account's 10: KIE refuses the
excess creates, and the summary sets that run's worker-slot seconds per video and makespan against the
uncontended run of the same variant (issue 21).

(``bash scripts/test.sh -s tests-3.3.2 -- tests/unit/bench`` builds that environment on a clean clone.)

The table also goes to ``bench/out/makespan.txt`` and every figure to ``bench/out/makespan.json``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
DAGS_FOLDER = REPO / "bench" / "makespan_dags"
POOL = "runway_makespan"
#: The account's concurrent generations in runway-sim, and the default pool size (uncontended: no create refused).
POOL_SLOTS = 10
EXECUTOR_SLOTS = 16
QUEUEING_SECONDS = 2.0
GENERATING_SECONDS = 20.0
GENERATION_SECONDS = QUEUEING_SECONDS + GENERATING_SECONDS
API_KEY = "bench-makespan-key-0001"
#: Seconds between two looks at the executor's worker processes (integrated into worker-slot seconds).
SLOT_SAMPLE_INTERVAL = 0.2
DETECTIONS_PATH = "/_bench/detections"
#: The supervisor's line when a task process ends (in the scheduler's log, LocalExecutor).
WORKLOAD_FINISHED = re.compile(
    r"^(\S+Z) .*Workload finished .*\bduration=([0-9.]+) .*\bfinal_state=(\w+).*\bworkload_type=ExecuteTask"
)


@dataclass(frozen=True)
class Variant:
    key: str
    dag_id: str
    label: str
    #: The task whose end frees a pool slot and ends a video.
    end_task_id: str
    #: The task whose return value names the simulator's task (a dict with ``task_id``, or the id itself).
    id_task_id: str
    #: The DAG's file in ``bench/makespan_dags``.
    dag_file: str


VARIANTS = {
    "A": Variant(
        "A", "makespan_provider", "provider, deferrable=True, poll 5 s", "generate", "generate", "makespan_provider.py"
    ),
    "C": Variant(
        "C",
        "makespan_resume_on_worker",
        "provider, resumed on a worker",
        "generate",
        "generate",
        "makespan_provider.py",
    ),
    "B": Variant(
        "B",
        "makespan_http",
        "http provider: HttpOperator + HttpSensor poke 5 s",
        "video.wait",
        "video.create",
        "makespan_http.py",
    ),
}


#: Loopback only: never through a proxy from the environment.
LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the simulator, with the time each generation's end was first read ------------------------------------


def instrument(sim: Any) -> dict[str, float]:
    """Make ``sim`` (a :class:`RunwaySimulator` not yet started) record when a read first saw each task end.

    The simulator counts reads per task but not when one first saw the end: a middleware records it in
    the returned dict, ``{task_id: epoch seconds}``, which ``GET /_bench/detections`` also serves.
    """
    from aiohttp import web

    from airflow_provider_runway.core.wire import RUNWAY_RECORD_DETAIL_PATH

    detected: dict[str, float] = {}

    @web.middleware
    async def record_detection(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.path == RUNWAY_RECORD_DETAIL_PATH and response.status == 200:
            task_id = request.query.get("taskId", "")
            task = sim.engine.tasks.get(task_id)
            if task is not None and task_id not in detected:
                now = time.time()
                if sim.engine.snapshot(task, now).state in ("success", "fail"):
                    detected[task_id] = now
        return response

    async def detections(request: web.Request) -> web.Response:
        return web.json_response(detected)

    sim.app.middlewares.append(record_detection)
    sim.app.router.add_get(DETECTIONS_PATH, detections)
    return detected


def sim_config() -> Any:
    from airflow_provider_runway.simulator.config import SimulatorConfig

    return SimulatorConfig(
        wait_seconds=0.0,
        queueing_seconds=QUEUEING_SECONDS,
        generating_seconds=GENERATING_SECONDS,
        concurrency_limit=POOL_SLOTS,
        # Refuse a create over the limit instead of failing the created task (KIE's way): the http route's
        # sensor cannot tell such a failure from a real one, while its create retries a refusal (see the DAG).
        concurrency_mode="refuse",
        starting_credits=10**9,
        seed=int(time.time()) % 2**31,
    )


def serve_sim(url_file: Path) -> None:
    """Run the instrumented ``runway-sim`` in this process until SIGTERM; its URL goes to ``url_file``."""
    import asyncio

    from airflow_provider_runway.simulator.cli import serve
    from airflow_provider_runway.simulator.server import RunwaySimulator

    sim = RunwaySimulator(sim_config())
    instrument(sim)

    asyncio.run(serve(sim, "127.0.0.1", 0, on_listening=url_file.write_text))


# -- figures ----------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    variant: str
    run_id: str
    state: str
    videos: int
    makespan: float
    limit: float
    worker_slot_seconds: float
    ti_duration_seconds: float
    #: Task processes that ran (each start of a task on a worker) and their summed run time, from the supervisor.
    task_processes: int
    task_process_seconds: float
    #: Median run time of the task processes that ended the task (A: the resume after the deferral).
    final_process_median: float | None
    reads: int
    #: Generations the simulator accepted (each one paid) and create requests it refused (over the limit).
    creations: int
    refused_creates: int
    #: The pool's slots in this run (above POOL_SLOTS, KIE refuses the excess creates).
    pool: int = POOL_SLOTS
    #: Medians per video, seconds (None when not measurable).
    first_create: float | None = None
    slot_to_create: float | None = None
    generation: float | None = None
    poll_lag: float | None = None
    detect_to_end: float | None = None
    poll_lag_p90: float | None = None
    task_states: dict[str, int] = field(default_factory=dict)
    #: ``os.getloadavg()`` when the run ended.
    load_at_end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def warmup(self) -> bool:
        return self.run_id.split("_")[2].startswith("w")

    @property
    def ratio(self) -> float:
        return self.makespan / self.limit

    @property
    def key(self) -> str:
        """The variant, with ``@pool`` when the pool is larger than the account's limit (e.g. ``A@20``)."""
        return self.variant if self.pool == POOL_SLOTS else f"{self.variant}@{self.pool}"

    @property
    def label(self) -> str:
        """The run's name in the table: ``A0``, ``Aw0`` (a warm-up), ``A@20/1``."""
        run = self.run_id.split("_")[2]
        return f"{self.key}{'/' if self.pool != POOL_SLOTS else ''}{run}"


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class SlotSampler(threading.Thread):
    """Integrates the number of busy LocalExecutor worker processes over time (worker-slot seconds)."""

    def __init__(self, stack: Any) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.slot_seconds = 0.0
        self.most_busy = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        previous = time.monotonic()
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):
                busy = len(self.stack.busy_workers())
                now = time.monotonic()
                self.slot_seconds += busy * (now - previous)
                previous = now
                self.most_busy = max(self.most_busy, busy)
            self._stop_event.wait(SLOT_SAMPLE_INTERVAL)

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=10)
        return self.slot_seconds


def xcom_value(stack: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    run = urllib.parse.quote(run_id, safe="")
    path = f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/return_value"
    value = stack.get(f"{path}?map_index={map_index}&deserialize=true")["value"]
    if isinstance(value, str):
        for parse in (json.loads, ast.literal_eval):
            with contextlib.suppress(ValueError, SyntaxError):
                return parse(value)
    return value


def detections(sim_url: str) -> dict[str, float]:
    """``{task_id: epoch seconds}`` of the first read that saw each task ended (see :func:`serve_sim`)."""
    with LOOPBACK_OPENER.open(f"{sim_url}{DETECTIONS_PATH}", timeout=30) as response:
        return {str(k): float(v) for k, v in json.loads(response.read()).items()}


def task_processes(log_path: Path, since: float, until: float) -> list[tuple[float, str]]:
    """``(duration, final state)`` of every task process the supervisor saw end between two epoch times."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = WORKLOAD_FINISHED.match(line)
        if match and since <= datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp() <= until:
            found.append((float(match.group(2)), match.group(3)))
    return found


def sim_task_id(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("task_id")
        return str(found) if found else None
    return str(value) if value else None


def run_once(
    stack: Any,
    sim: Any,
    variant: Variant,
    index: int,
    videos: int,
    timeout: float,
    warmup: bool = False,
    pool: int = POOL_SLOTS,
) -> RunResult:
    """Trigger one run of ``variant`` through a pool of ``pool`` slots, wait for it, and measure it.

    A warm-up run is left out of the summary.
    """
    stack.request("PATCH", f"/pools/{POOL}", {"name": POOL, "slots": pool, "include_deferred": True})
    run_id = f"makespan_{variant.key}_{'w' if warmup else ''}{index}_{int(time.time())}"
    before = sim.counters()
    detections_before = set(detections(sim.url))
    logical_date = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=index)
    sampler = SlotSampler(stack)
    sampler.start()
    triggered_at = time.time()
    stack.trigger(variant.dag_id, run_id, logical_date, {})
    deadline = time.monotonic() + timeout
    state = "running"
    try:
        while time.monotonic() < deadline:
            stack.assert_alive()
            state = str(stack.dag_run(variant.dag_id, run_id)["state"])
            if state in ("success", "failed"):
                break
            time.sleep(1.0)
        else:
            state = "timed out"
        # The last task process may still be wrapping up in its worker slot.
        settle = time.monotonic() + 30
        while stack.busy_workers() and time.monotonic() < settle:
            time.sleep(SLOT_SAMPLE_INTERVAL)
    finally:
        slot_seconds = sampler.stop()
    processes = task_processes(stack.components["scheduler"].log_path, triggered_at, time.time())
    load_after = os.getloadavg()
    after = sim.counters()
    run = stack.dag_run(variant.dag_id, run_id)
    start, end = parse_time(run.get("start_date")), parse_time(run.get("end_date"))
    makespan = (end - start) if start and end else float("nan")
    instances = stack.task_instances(variant.dag_id, run_id)
    states: dict[str, int] = {}
    for ti in instances:
        states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1

    def delta(key: str) -> int:
        return int(after["requests"].get(key, 0)) - int(before["requests"].get(key, 0))

    result = RunResult(
        variant=variant.key,
        pool=pool,
        run_id=run_id,
        state=state,
        videos=videos,
        makespan=makespan,
        limit=math.ceil(videos / POOL_SLOTS) * GENERATION_SECONDS,
        worker_slot_seconds=slot_seconds,
        ti_duration_seconds=sum(float(ti.get("duration") or 0.0) for ti in instances),
        task_processes=len(processes),
        task_process_seconds=sum(duration for duration, _ in processes),
        final_process_median=median([d for d, final in processes if final != "deferred"]),
        reads=delta("record-detail"),
        creations=int(after["tasks_total"]) - int(before["tasks_total"]),
        refused_creates=delta("generate") - (int(after["tasks_total"]) - int(before["tasks_total"])),
        task_states=states,
        load_at_end=load_after,
    )
    if start is None:
        return result

    # Where the time goes, per video.
    detected: dict[str, float] = {k: v for k, v in detections(sim.url).items() if k not in detections_before}
    tasks = {t["task_id"]: t for t in sim.tasks() if float(t["created_at"]) >= start - 1}
    created = sorted(float(t["created_at"]) for t in tasks.values())
    ends_by_index = {
        int(ti["map_index"]): parse_time(ti.get("end_date")) for ti in instances if ti["task_id"] == variant.end_task_id
    }
    ends = sorted(e for e in ends_by_index.values() if e is not None)
    if created:
        result.first_create = created[0] - start
    result.slot_to_create = median(
        [created[k] - ends[k - POOL_SLOTS] for k in range(POOL_SLOTS, len(created)) if k - POOL_SLOTS < len(ends)]
    )
    done = {tid: float(t["completes_at"]) for tid, t in tasks.items() if t.get("completes_at")}
    result.generation = median([done[tid] - float(tasks[tid]["created_at"]) for tid in done])
    lags = [detected[tid] - done[tid] for tid in done if tid in detected]
    result.poll_lag = median(lags)
    result.poll_lag_p90 = percentile(lags, 0.9)
    detect_to_end: list[float] = []
    for map_index, ended in ends_by_index.items():
        with contextlib.suppress(Exception):
            tid = sim_task_id(xcom_value(stack, variant.dag_id, run_id, variant.id_task_id, map_index))
            if tid in detected and ended is not None:
                detect_to_end.append(ended - detected[tid])
    result.detect_to_end = median(detect_to_end)
    return result


# -- the table --------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(results: list[RunResult]) -> str:
    columns = [
        ("run", lambda r: r.label),
        ("state", lambda r: r.state),
        ("makespan s", lambda r: fmt(r.makespan)),
        ("/ limit", lambda r: fmt(r.ratio, 2)),
        ("worker-slot s", lambda r: fmt(r.worker_slot_seconds, 0)),
        ("slot s/video", lambda r: fmt(r.worker_slot_seconds / r.videos, 1)),
        ("task procs", lambda r: str(r.task_processes)),
        ("proc s", lambda r: fmt(r.task_process_seconds, 0)),
        ("end proc s", lambda r: fmt(r.final_process_median)),
        ("sum TI duration s", lambda r: fmt(r.ti_duration_seconds, 0)),
        ("reads/video", lambda r: fmt(r.reads / r.videos, 2)),
        ("creations/video", lambda r: fmt(r.creations / r.videos, 2)),
        ("refused creates", lambda r: str(r.refused_creates)),
        ("1st create s", lambda r: fmt(r.first_create)),
        ("slot->create s", lambda r: fmt(r.slot_to_create)),
        ("generation s", lambda r: fmt(r.generation)),
        ("poll lag s", lambda r: fmt(r.poll_lag)),
        ("lag p90 s", lambda r: fmt(r.poll_lag_p90)),
        ("detect->end s", lambda r: fmt(r.detect_to_end)),
        ("load 1/5 min", lambda r: f"{r.load_at_end[0]:.1f}/{r.load_at_end[1]:.1f}"),
    ]
    rows = [[name for name, _ in columns]] + [[str(get(r)) for _, get in columns] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(results: list[RunResult]) -> str:
    """Ranges per variant and the ratios of the means to B's, over the runs that succeeded."""
    lines = []
    by_variant: dict[str, list[RunResult]] = {}
    warmups = [r for r in results if r.warmup]
    if warmups:
        lines.append(f"(warm-up runs {', '.join(r.label for r in warmups)} are left out)")
    for result in results:
        if result.state == "success" and not result.warmup:
            by_variant.setdefault(result.key, []).append(result)
    if len(results) - len(warmups) > sum(map(len, by_variant.values())):
        lines.append("(runs that did not succeed are left out of these figures)")
    for key, runs in by_variant.items():
        spans = [r.makespan for r in runs]
        slots = [r.worker_slot_seconds for r in runs]
        pool = f", pool {runs[0].pool}" if runs[0].pool != POOL_SLOTS else ""
        lines.append(
            f"{key} = {VARIANTS[runs[0].variant].label}{pool}: makespan {min(spans):.1f}-{max(spans):.1f} s "
            f"({min(spans) / runs[0].limit:.2f}-{max(spans) / runs[0].limit:.2f} x the limit), "
            f"worker-slot s {min(slots):.0f}-{max(slots):.0f}, "
            f"creations/video {min(r.creations / r.videos for r in runs):.2f}-"
            f"{max(r.creations / r.videos for r in runs):.2f}, refused creates "
            f"{min(r.refused_creates for r in runs)}-{max(r.refused_creates for r in runs)}"
        )
    lines += contention_ratios(by_variant)
    if "B" in by_variant:
        b_slots = statistics.mean(r.worker_slot_seconds for r in by_variant["B"])
        b_span = statistics.mean(r.makespan for r in by_variant["B"])
        for key in sorted(k for k in by_variant if k != "B"):
            mean_slots = statistics.mean(r.worker_slot_seconds for r in by_variant[key])
            mean_span = statistics.mean(r.makespan for r in by_variant[key])
            lines.append(
                f"{key}/B (means): makespan {mean_span / b_span:.2f}, worker-slot seconds "
                f"{mean_slots / b_slots:.2f} (B holds {b_slots / mean_slots:.1f}x the worker time of {key})"
            )
    return "\n".join(lines)


def contention_ratios(by_variant: dict[str, list[RunResult]]) -> list[str]:
    """Each larger pool's means against the same variant's uncontended pool (issue 21's bounds: 1.5x, 1.25x)."""
    lines = []
    for key, runs in by_variant.items():
        uncontended = by_variant.get(runs[0].variant)
        if runs[0].pool == POOL_SLOTS or not uncontended:
            continue
        slots = statistics.mean(r.worker_slot_seconds / r.videos for r in runs)
        base = statistics.mean(r.worker_slot_seconds / r.videos for r in uncontended)
        ratio = statistics.mean(r.ratio for r in runs)
        lines.append(
            f"{key} vs {runs[0].variant} (means): worker-slot s per video {slots:.2f} vs {base:.2f} = "
            f"{slots / base:.2f}x; makespan {ratio:.2f}x the physical limit"
        )
    return lines


# -- main -------------------------------------------------------------------------------------------------


def start_sim(registry: Any, tmp: Path) -> Any:
    from airflow_provider_runway.simulator.client import SimulatorClient
    from tests.e2e.conftest import ManagedProcess, wait_until

    port_file = tmp / "sim-url"
    argv = [sys.executable, "-m", "bench.makespan", "--serve-sim", str(port_file)]
    process = registry.add(ManagedProcess("runway-sim", argv, tmp / "runway-sim.log", dict(os.environ), REPO).start())

    def listening() -> str | None:
        assert process.alive(), f"runway-sim exited:\n{process.tail()}"
        return port_file.read_text() if port_file.exists() and port_file.read_text() else None

    url = str(wait_until(listening, 60, "runway-sim to listen", interval=0.1))
    return url, SimulatorClient(url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.makespan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each variant, alternating (default 2)")
    parser.add_argument("--videos", type=int, default=30, help="generations per run (default 30)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="poll interval of both variants (s)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="runs of each variant first, shown but left out of the summary (default 1): a fresh Airflow's first "
        "run pays cold starts, and a long-lived triggerer has seen generations before",
    )
    parser.add_argument("--quick", action="store_true", help="10 videos, one run of each variant, no warm-up")
    parser.add_argument("--variants", default="AB", help="which variants, in the order they alternate (default AB)")
    parser.add_argument(
        "--pools",
        default=str(POOL_SLOTS),
        help=f"pool sizes to run each variant with, e.g. 10,20 (default {POOL_SLOTS}, the account's limit: a larger "
        "pool lets more tasks start than KIE takes, so it refuses the excess creates)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp AIRFLOW_HOME and logs")
    parser.add_argument("--serve-sim", metavar="URL_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sim:
        serve_sim(Path(args.serve_sim))
        return 0
    # Stopped with SIGTERM: unwind through the cleanup below like on Ctrl-C (the Airflow processes run in their own
    # process groups and would outlive this one).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.quick:
        args.videos, args.runs, args.warmup = 10, 1, 0
    variants = [VARIANTS[key] for key in args.variants.upper()]
    pools = [int(size) for size in args.pools.split(",")]

    from airflow import __version__ as airflow_version

    from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        print(f"bench.makespan needs Airflow 3 (LocalExecutor on SQLite); this is Airflow {airflow_version}")
        return 2
    from tests.e2e.conftest import Airflow3Stack, ProcessRegistry

    class MakespanStack(Airflow3Stack):
        executor_parallelism = EXECUTOR_SLOTS

    for name in ("NO_PROXY", "no_proxy"):  # the simulator client below must reach loopback directly
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1,localhost"]))
    tmp = Path(tempfile.mkdtemp(prefix="makespan-"))
    registry = ProcessRegistry()
    results: list[RunResult] = []
    started = time.monotonic()
    try:
        url, sim = start_sim(registry, tmp)
        http_conn = {"conn_type": "http", "host": url, "extra": {"Authorization": f"Bearer {API_KEY}"}}
        stack = MakespanStack(
            registry,
            home=tmp / "airflow",
            dags_folder=DAGS_FOLDER,
            extra_env={
                "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps({"conn_type": "runway", "host": url, "password": API_KEY}),
                "AIRFLOW_CONN_RUNWAY_HTTP": json.dumps(http_conn),
                "MAKESPAN_VIDEOS": str(args.videos),
                "MAKESPAN_POLL_INTERVAL": str(args.poll_interval),
                "MAKESPAN_POOL": POOL,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            },
        )
        stack.start()
        stack.request("POST", "/pools", {"name": POOL, "slots": POOL_SLOTS, "include_deferred": True})
        for variant in variants:
            stack.wait_for_dag(variant.dag_id, variant.dag_file, timeout=120)
            stack.unpause(variant.dag_id)
        print(
            f"Airflow {airflow_version}: {', '.join(stack.components)} healthy in "
            f"{time.monotonic() - started:.0f} s; {args.videos} videos x {args.runs} runs of {args.variants}",
            flush=True,
        )
        timeout = max(600.0, 10 * math.ceil(args.videos / POOL_SLOTS) * GENERATION_SECONDS)
        schedule = [(index, True) for index in range(args.warmup)] + [(index, False) for index in range(args.runs)]
        for index, warmup in schedule:
            for variant, pool in [(variant, pool) for pool in pools for variant in variants]:
                result = run_once(stack, sim, variant, index, args.videos, timeout, warmup=warmup, pool=pool)
                results.append(result)
                label = result.label
                print(
                    f"  {label}: {result.state}, makespan {fmt(result.makespan)} s, "
                    f"worker-slot {result.worker_slot_seconds:.0f} s",
                    flush=True,
                )
    finally:
        registry.stop_all()
        if results:
            report(results, args, airflow_version, started)
        if args.keep:
            print(f"logs and AIRFLOW_HOME kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if results and all(r.state == "success" for r in results) else 1


def report(results: list[RunResult], args: argparse.Namespace, airflow_version: str, started: float) -> None:
    header = (
        f"Batch makespan, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Airflow {airflow_version}, "
        f"LocalExecutor {EXECUTOR_SLOTS} slots, SQLite; {args.videos} videos per run, pool {args.pools} "
        f"(deferred count), runway-sim {QUEUEING_SECONDS:g} s queueing + {GENERATING_SECONDS:g} s generating, "
        f"concurrency {POOL_SLOTS}; poll {args.poll_interval:g} s; physical limit "
        f"ceil({args.videos}/{POOL_SLOTS}) x {GENERATION_SECONDS:g} s = {results[0].limit:g} s; "
        f"{os.cpu_count()} CPUs; whole benchmark {time.monotonic() - started:.0f} s"
    )
    legend = "\n".join(
        [
            *(f"{v.key} = {v.label} (DAG {v.dag_id})" for v in VARIANTS.values()),
            "worker-slot s: LocalExecutor worker processes running a workload, sampled every "
            f"{SLOT_SAMPLE_INTERVAL:g} s and integrated; task procs / proc s: task processes the supervisor ran "
            "and their summed run time (its 'Workload finished' lines); end proc s: median run time of the "
            "processes that ended a task (A: the resume after the deferral); sum TI duration s: the API's "
            "task-instance durations (deferred time included)",
            "per video, medians: 1st create (run start to the first creation), slot->create (a pool slot frees "
            "to the next creation), generation (creation to its end), poll lag (end to the first read that "
            "sees it), detect->end (that read to the end of the task instance)",
        ]
    )
    text = "\n\n".join([header, table(results), summary(results), legend])
    print("\n" + text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "makespan.txt").write_text(text + "\n")
    (OUT / "makespan.json").write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
