"""The nightly batch example on Airflow's own processes, against ``runway-sim`` on loopback.

What it shows, on the installed Airflow's real processes (SQLite): on Airflow 3 the scheduler
(LocalExecutor, 4 worker slots), dag-processor, triggerer and api-server; on Airflow 2.11 the scheduler
(SequentialExecutor, 1 slot, DAG parsing inside), triggerer and webserver (``conftest.airflow_stack``):

* the pool of 10 slots counts deferred tasks, so the 20 prompts run in two waves of 10 and the
  account never sees more than 10 generations at once (the other prompts wait ``scheduled``);
* while the simulator holds a wave in ``generating``, its 10 task instances are ``deferred`` (more
  than the executor has slots), no executor slot runs anything and no task process exists, and only
  the triggerer polls;
* a triggerer killed with SIGKILL mid-wait and started again picks the waits up, and the run
  still ends with every task succeeded;
* the simulator counted exactly one creation per prompt, and one MP4 per prompt is on disk.

Each wave is released only after its workers went idle: Airflow 3.3.2 fails a task whose trigger
fires before the scheduler processed the worker's defer-exit event (apache/airflow#67287, #72716).

It prints its timings and a table of the states it observed (the evidence for the issue).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from .conftest import REPO_ROOT, AirflowStack, ProcessRegistry, airflow_stack, start_runway_sim, wait_until

DAG_ID = "example_runway_nightly_batch"
DAG_FILE = "example_runway_nightly_batch.py"
MAPPED_TASK_ID = "generate"
POOL = "runway_generations"
POOL_SLOTS = 10
# Distinctive, and built at run time so that no file holds it unless something leaked it.
API_KEY = "-".join(["sk", "e2e", "LEAKCHECK", "5b8e1d"])
PROMPTS = [f"E2E shot {n}: a paper boat on a still pond, slow dolly in, overcast light" for n in range(1, 21)]
RUN_ID = "e2e_nightly_batch"
GENERATING_SECONDS = 3.0  # the simulator's generating phase (time_scale 1)

pytestmark = pytest.mark.e2e


@dataclass
class Sample:
    """One observation: task states, simulator states, pool slots, busy executor workers and task processes."""

    elapsed: float
    executor_slots: int
    states: Counter[str]
    sim_states: dict[str, int]
    sim_held: int
    pool: dict[str, int]
    busy_workers: list[str]
    task_processes: list[str]

    def row(self) -> str:
        states = " ".join(f"{k}={v}" for k, v in sorted(self.states.items()))
        sim = " ".join(f"{k}={v}" for k, v in sorted(self.sim_states.items()))
        sim += f" (held {self.sim_held})" if self.sim_held else ""
        slots = "/".join(str(self.pool.get(k, "-")) for k in ("running_slots", "queued_slots", "deferred_slots"))
        workers = f"{len(self.busy_workers)}/{self.executor_slots} busy, {len(self.task_processes)} task procs"
        return f"{self.elapsed:7.1f}s | {states:<44} | {sim:<50} | {slots:<11} | {workers}"


@dataclass
class Evidence:
    """The observed timeline; only rows that changed are kept for the printed table."""

    started: float
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    def observe(self, stack: AirflowStack, sim: Any) -> Sample:
        instances = [t for t in stack.task_instances(DAG_ID, RUN_ID) if t["task_id"] == MAPPED_TASK_ID]
        sample = Sample(
            elapsed=time.monotonic() - self.started,
            executor_slots=stack.executor_parallelism,
            states=Counter(str(t["state"]) for t in instances if t["map_index"] >= 0),
            sim_states=dict(sim.counters()["tasks_by_state"]),
            sim_held=held_past_their_end(sim),
            pool={k: v for k, v in stack.pool(POOL).items() if k.endswith("_slots")},
            busy_workers=stack.busy_workers(),
            task_processes=stack.task_processes(),
        )
        self.samples.append(sample)
        return sample

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic() - self.started, what))

    def table(self, workers: str) -> str:
        header = (
            f"{'t':>8} | {'generate task instances':<44} | {'simulator tasks':<50} | run/que/def | executor workers"
        )
        legend = (
            f"t: seconds since the run was triggered at {self.started_at:%Y-%m-%d %H:%M:%S} UTC; "
            "(held N): generations the pause keeps past their natural end; "
            f"run/que/def: the pool's running/queued/deferred slots; executor workers: {workers}"
        )
        lines = [legend, header, "-" * len(header)]
        items: list[tuple[float, str]] = [(t, f"{t:7.1f}s | ** {what}") for t, what in self.events]
        previous = None
        for sample in self.samples:
            key = (
                sample.states,
                sample.sim_states,
                sample.sim_held,
                sample.pool,
                len(sample.busy_workers),
                len(sample.task_processes),
            )
            if key != previous:
                items.append((sample.elapsed, sample.row()))
            previous = key
        lines += [text for _, text in sorted(items, key=lambda item: item[0])]
        return "\n".join(lines)


def held_past_their_end(sim: Any) -> int:
    """Generations that would have finished by now and are still ``generating`` only because of the pause.

    The pause also flags tasks still inside their natural generating time, and ``resume()`` leaves those
    to finish on their own; a wave counts as held once all of it is past its natural end.
    """
    now = time.time()  # the simulator's clock: same host
    return sum(task["held"] and now > task["generating_at"] + GENERATING_SECONDS + 0.1 for task in sim.tasks())


def held_while_generating(sample: Sample, wave: int) -> bool:
    """Wave ``wave`` (0 or 1) of the pool's size is deferred while the simulator holds it generating.

    The earlier waves have succeeded and the later prompts wait ``scheduled`` for a pool slot.
    """
    done = wave * POOL_SLOTS
    return (
        sample.states.get("deferred", 0) == POOL_SLOTS
        and sample.states.get("success", 0) == done
        and sample.states.get("scheduled", 0) == len(PROMPTS) - POOL_SLOTS - done
        and sample.sim_states.get("generating", 0) == POOL_SLOTS
        and sample.sim_held == POOL_SLOTS
    )


def scan_for_secret(root: Path, secret: str) -> tuple[int, list[str]]:
    """Count the task log files under ``root`` and list every file (logs, DB, outputs) holding ``secret``."""
    needle = secret.encode()
    task_logs = 0
    leaking: list[str] = []
    for path in root.rglob("*"):
        if not path.is_file() or path.suffix in (".mp4", ".png"):
            continue
        if "dag_id=" in str(path) and path.suffix == ".log":
            task_logs += 1
        if needle in path.read_bytes():
            leaking.append(str(path.relative_to(root)))
    return task_logs, leaking


def start_stack(registry: ProcessRegistry, tmp: Path, sim_url: str, output_dir: Path) -> AirflowStack:
    connection = {"conn_type": "runway", "host": sim_url, "password": API_KEY}
    stack = airflow_stack(
        registry,
        home=tmp / "airflow",
        dags_folder=REPO_ROOT / "dags",
        extra_env={
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "RUNWAY_POLL_INTERVAL": "0.5",
            "RUNWAY_OUTPUT_DIR": f"file://{output_dir}/",
            # The example retries twice; should a retry happen, it comes within the test's time bound.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
        },
    )
    stack.start()
    stack.airflow_cli("pools", "import", str(REPO_ROOT / "dags" / "runway_pools.json"))
    return stack


def trigger_batch(stack: AirflowStack, logical_date: datetime) -> None:
    stack.unpause(DAG_ID)
    stack.trigger(DAG_ID, RUN_ID, logical_date, {"prompts": PROMPTS})


def record_detail_reads(sim: Any) -> int:
    return int(sim.counters()["requests"].get("record-detail", 0))


@dataclass
class BatchRun:
    """The run under test with its observers."""

    stack: AirflowStack
    sim: Any
    evidence: Evidence

    def observe(self) -> Sample:
        self.stack.assert_alive()
        return self.evidence.observe(self.stack, self.sim)

    def wait_held(self, wave: int, timeout: float) -> None:
        """Wait until ``wave`` is deferred and held, then until every worker has handed its task over."""
        wait_until(
            lambda: held_while_generating(self.observe(), wave),
            timeout,
            f"wave {wave} deferred and held",
            self.stack.observe_interval,
        )
        self.evidence.mark(f"wave {wave}: {POOL_SLOTS} deferred, simulator holding {POOL_SLOTS} in generating")

        # A worker wraps up for a moment after its task deferred (extra links, logs); then it is free.
        def workers_free() -> bool:
            sample = self.observe()
            assert held_while_generating(sample, wave), sample
            return not sample.busy_workers and not sample.task_processes

        wait_until(workers_free, 30, f"the workers to hand wave {wave} to the triggerer", self.stack.observe_interval)
        self.evidence.mark(f"wave {wave}: every worker idle")

    def assert_no_worker_busy(self, wave: int, seconds: int) -> None:
        """For ``seconds``: the wave stays deferred, nothing is queued or running, every worker idles."""
        for _ in range(seconds):
            sample = self.observe()
            assert held_while_generating(sample, wave), sample
            assert sample.states.get("running", 0) == 0 and sample.states.get("queued", 0) == 0, sample
            assert sample.busy_workers == [] and sample.task_processes == [], sample
            assert (sample.pool["running_slots"], sample.pool["queued_slots"]) == (0, 0), sample.pool
            assert sample.pool["deferred_slots"] == POOL_SLOTS, sample.pool
            time.sleep(1)
        assert self.stack.free_executor_slots() == self.stack.executor_parallelism
        assert self.sim.counters()["requests"]["generate"] == POOL_SLOTS * (wave + 1)  # the pool held the rest back

    def restart_triggerer(self) -> float:
        """SIGKILL the triggerer mid-wait, start a new one; return seconds until it polls the held tasks."""
        self.stack.kill_component("triggerer")
        self.evidence.mark("triggerer killed (SIGKILL to its process group)")
        polls_at_kill = record_detail_reads(self.sim)
        time.sleep(3)
        polls_at_restart = record_detail_reads(self.sim)
        assert polls_at_restart == polls_at_kill  # only the triggerer polls: no worker took the waits over
        assert held_while_generating(self.observe(), 0)  # and nothing failed with the triggerer
        started = time.monotonic()
        self.stack.start_component("triggerer")
        self.evidence.mark("new triggerer started")

        def adopted() -> bool:
            self.stack.assert_alive()
            return record_detail_reads(self.sim) >= polls_at_restart + 2 * POOL_SLOTS

        wait_until(adopted, 90, "the new triggerer to poll the held generations")
        self.evidence.mark("new triggerer polling the held generations")
        assert held_while_generating(self.observe(), 0)
        return time.monotonic() - started

    def release(self, hold_next: bool) -> None:
        released = self.sim.resume()
        if hold_next:
            self.sim.pause()
        self.evidence.mark(f"simulator released {released} generations" + (", holds the next" if hold_next else ""))
        assert released == POOL_SLOTS

    def wait_finished(self, timeout: float) -> str:
        def finished() -> str | None:
            self.observe()
            state = self.stack.dag_run(DAG_ID, RUN_ID)["state"]
            return state if state in ("success", "failed") else None

        state = str(wait_until(finished, timeout, "the batch run to finish", self.stack.observe_interval))
        self.evidence.mark(f"run {state}")
        return state


def test_nightly_batch_waits_deferred_survives_triggerer_kill_and_succeeds(
    process_registry: ProcessRegistry, e2e_tmp: Path
) -> None:
    t_start = time.monotonic()
    # The account's limit matches the pool: a pool that did not count deferred tasks would let more
    # creations through and the simulator would refuse them.
    sim_args = ["--concurrency-limit", str(POOL_SLOTS), "--wait-seconds", "0.5", "--queueing-seconds", "0.5"]
    sim_process = start_runway_sim(
        process_registry, e2e_tmp, [*sim_args, "--generating-seconds", str(GENERATING_SECONDS)]
    )
    sim = sim_process.client()
    output_dir = e2e_tmp / "videos"
    stack = start_stack(process_registry, e2e_tmp, sim_process.url, output_dir)
    stack.wait_for_dag(DAG_ID, DAG_FILE, timeout=90)
    pool = stack.pool(POOL)
    assert (pool["slots"], pool["include_deferred"]) == (POOL_SLOTS, True)
    startup = time.monotonic() - t_start

    # The simulator holds every generation in ``generating`` until released, wave by wave.
    sim.pause()
    logical_date = datetime.now(timezone.utc).replace(microsecond=0)
    t_trigger = time.monotonic()
    trigger_batch(stack, logical_date)
    run = BatchRun(stack, sim, Evidence(started=t_trigger))
    run.evidence.mark("run triggered, simulator paused")
    timings: dict[str, float] = {}
    try:
        run.wait_held(wave=0, timeout=300)
        timings["trigger -> wave 0 deferred and every worker idle"] = time.monotonic() - t_trigger
        run.assert_no_worker_busy(wave=0, seconds=4)
        assert record_detail_reads(sim) >= POOL_SLOTS  # the waits poll, from the triggerer
        timings["triggerer restart -> new triggerer polling"] = run.restart_triggerer()
        # Hold wave 1 too: Airflow 3.3.2 fails a task whose trigger fires before the scheduler saw
        # its worker's defer-exit event (apache/airflow#67287, #72716), so release only settled waves.
        run.release(hold_next=True)
        t_wave = time.monotonic()
        run.wait_held(wave=1, timeout=300)
        timings["release wave 0 -> wave 1 deferred and every worker idle"] = time.monotonic() - t_wave
        run.assert_no_worker_busy(wave=1, seconds=2)
        run.release(hold_next=False)
        final_state = run.wait_finished(timeout=300)
        timings["trigger -> run finished"] = time.monotonic() - t_trigger
    finally:
        print(f"\n== e2e nightly batch on Airflow processes ({len(PROMPTS)} prompts, pool {POOL_SLOTS} slots)")
        components = ", ".join(stack.components)
        print(f"Airflow {airflow_version}, {stack.executor} with {stack.executor_parallelism} slot(s)")
        print(f"startup (simulator, db migrate, Airflow processes {components} healthy, DAG parsed): {startup:.1f}s")
        print("  of which " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in stack.startup_timings.items()))
        for what, seconds in timings.items():
            print(f"{what}: {seconds:.1f}s")
        print(f"whole test: {time.monotonic() - t_start:.1f}s")
        cpu = ", ".join(f"{p.name} {p.cpu_seconds():.0f}s" for p in process_registry.processes if p.alive())
        print(f"CPU used by the processes still running: {cpu}")
        print(run.evidence.table(stack.describe_workers()))

    process_registry.assert_loopback_only()  # the restarted triggerer too
    instances = stack.task_instances(DAG_ID, RUN_ID)
    assert final_state == "success", Counter((t["task_id"], t["state"]) for t in instances)
    assert Counter(t["state"] for t in instances) == Counter({"success": len(PROMPTS) + 1})
    tries = Counter(t["try_number"] for t in instances if t["task_id"] == MAPPED_TASK_ID)
    print(f"generate tasks by try number: {dict(tries)}")
    most_deferred = max(s.states.get("deferred", 0) for s in run.evidence.samples)
    assert most_deferred == POOL_SLOTS  # the pool bound held
    # Deferred tasks hold no executor slot: more of them waited at once than the executor has slots.
    assert most_deferred > stack.executor_parallelism
    # The worker observables do see work when there is some: "no worker busy" above is not vacuous, and
    # they never saw more busy slots than the executor has.
    assert max(len(s.busy_workers) for s in run.evidence.samples) == stack.executor_parallelism
    assert max(len(s.task_processes) for s in run.evidence.samples) > 0

    counters = sim.counters()
    assert counters["tasks_created"] == {sim.account_label(API_KEY): len(PROMPTS)}
    assert counters["requests"]["generate"] == len(PROMPTS)  # one creation per prompt, none after the kill
    assert counters["tasks_by_state"] == {"success": len(PROMPTS)}

    # The real task, triggerer, scheduler and dag-processor logs (and the metadata DB) never hold the key.
    task_logs, leaking = scan_for_secret(e2e_tmp, API_KEY)
    assert task_logs > 0, "no task log files were written: the scan would prove nothing"
    assert leaking == []

    videos = sorted((output_dir / "batch" / logical_date.strftime("%Y%m%d")).glob("*.mp4"))
    assert len(videos) == len(PROMPTS), [str(v) for v in videos]
    for video in videos:
        assert video.read_bytes()[4:8] == b"ftyp", video
