"""A batch of deferrable Runway tasks on the production topology survives losing a triggerer.

On Postgres, Redis, the CeleryExecutor with one worker and two triggerers (``conftest.start_topology``),
against ``runway-sim`` on loopback:

* :data:`TASK_COUNT` independent tasks defer while the simulator holds their generations in
  ``generating``; their triggers spread over both triggerers (the ``trigger`` table's ``triggerer_id``);
* the triggerer holding more of them is SIGKILLed (its whole process group) and the simulator lets every
  generation finish at that moment;
* the other triggerer adopts every orphaned trigger once the dead one's heartbeat is older than
  ``[triggerer] triggerer_health_check_threshold``, and each adopted wait ends within that threshold plus
  one poll of the kill; the survivor's own waits end within a poll;
* every task succeeds; the simulator counted exactly one creation per task; the task with
  ``download_to`` stored its MP4 and the others returned the result URL only.

The test prints the timeline read from the ``trigger`` table: which triggerer held how many triggers,
when the orphans were adopted, and when the waits ended.
"""

from __future__ import annotations

import ast
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow import __version__ as airflow_version

from ..conftest import ProcessRegistry, start_runway_sim, wait_until
from .conftest import (
    CELERY_CONCURRENCY,
    TRIGGERER_HEALTH_THRESHOLD,
    TRIGGERER_HEARTBEAT_SECONDS,
    Topology,
    start_topology,
)

DAG_ID = "runway_topology_batch"
DAG_FILE = "runway_topology_batch.py"
DOWNLOADING_TASK = "generate_00"
TASK_COUNT = 20
POLL_INTERVAL = 1.0
#: Seconds between two reads of the ``trigger`` table while the waits run.
SAMPLE_INTERVAL = 0.25
#: On top of the threshold, for adoption and the first read after it: the survivor's trigger-loading loop
#: (about 1 s), heartbeats running late on a loaded 2-core machine, and the sampling above.
ADOPTION_SLACK = 3.0
#: Per wait, for its task to leave ``deferred`` after the read that saw the generation end: the triggerer
#: hands the events to the database one after another (0.1-0.3 s each here, 0.7 s at a load average of 27).
EVENT_HANDLING_SLACK = 1.0
API_KEY = "-".join(["sk", "e2e", "TOPOLOGY", "7c41aa"])
RUN_ID = "e2e_topology_batch"

pytestmark = pytest.mark.e2e

TASKS_AND_TRIGGERERS = """
    SELECT ti.task_id, ti.state, t.triggerer_id
    FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id
    WHERE ti.dag_id = %s AND ti.run_id = %s
"""


@dataclass
class TriggerTimeline:
    """Each task's triggerer and state over time, read from the metadata database."""

    started: float
    #: task id -> (seconds, triggerer job id or None, task state), a row each time either changed.
    history: dict[str, list[tuple[float, int | None, str]]] = field(default_factory=dict)

    def sample(self, topology: Topology) -> dict[str, tuple[int | None, str]]:
        rows = topology.stack.query(TASKS_AND_TRIGGERERS, DAG_ID, RUN_ID)  # type: ignore[attr-defined]
        now = time.monotonic() - self.started
        current = {task_id: (triggerer, str(state)) for task_id, state, triggerer in rows}
        for task_id, (triggerer, state) in current.items():
            changes = self.history.setdefault(task_id, [])
            if not changes or changes[-1][1:] != (triggerer, state):
                changes.append((now, triggerer, state))
        return current

    #: Runway task id -> seconds of the first simulator read of it after the kill.
    first_read_after_kill: dict[str, float] = field(default_factory=dict)
    reads_at_kill: dict[str, int] = field(default_factory=dict)

    def sample_reads(self, sim: Any) -> None:
        """Note each generation's first status read after the kill (the simulator counts reads per task)."""
        now = time.monotonic() - self.started
        for task in sim.tasks():
            runway_id, reads = task["task_id"], task["reads"]
            if runway_id not in self.reads_at_kill:
                self.reads_at_kill[runway_id] = reads
            elif reads > self.reads_at_kill[runway_id]:
                self.first_read_after_kill.setdefault(runway_id, now)

    def first(self, task_id: str, predicate: Any, after: float = 0.0) -> float | None:
        """When the task first matched ``predicate(triggerer, state)`` at or after ``after`` seconds."""
        changes = self.history.get(task_id, [])
        return next((t for t, trig, state in changes if t >= after and predicate(trig, state)), None)


def holdings(current: dict[str, tuple[int | None, str]]) -> Counter[int]:
    """Deferred tasks per triggerer job id."""
    return Counter(trig for trig, state in current.values() if state == "deferred" and trig is not None)


def all_deferred_and_assigned(current: dict[str, tuple[int | None, str]]) -> bool:
    return len(current) == TASK_COUNT and all(state == "deferred" and trig for trig, state in current.values())


def read_return_value(topology: Topology, task_id: str) -> Any:
    stack = topology.stack
    entry = stack.get(f"/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances/{task_id}/xcomEntries/return_value")
    value = entry["value"]
    if not isinstance(value, str):
        return value
    # Airflow 3 returns JSON; Airflow 2's REST API renders the value with str(), a Python literal.
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def test_batch_survives_the_busier_triggerer_killed_on_celery_and_postgres(
    process_registry: ProcessRegistry, e2e_tmp: Path, postgres_dir: Path
) -> None:
    t_start = time.monotonic()
    sim_args = ["--concurrency-limit", "100", "--wait-seconds", "0.2", "--queueing-seconds", "0.2"]
    sim_process = start_runway_sim(process_registry, e2e_tmp, [*sim_args, "--generating-seconds", "1"])
    sim = sim_process.client()
    output_dir = e2e_tmp / "videos"
    connection = {"conn_type": "runway", "host": sim_process.url, "password": API_KEY}
    topology = start_topology(
        process_registry,
        e2e_tmp,
        postgres_dir,
        {
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(connection),
            "RUNWAY_TOPOLOGY_TASKS": str(TASK_COUNT),
            "RUNWAY_POLL_INTERVAL": str(POLL_INTERVAL),
            "RUNWAY_OUTPUT_DIR": f"file://{output_dir}/",
        },
    )
    stack = topology.stack
    stack.wait_for_dag(DAG_ID, DAG_FILE, timeout=120)
    startup = time.monotonic() - t_start
    job_names = {job: name for name, job in topology.triggerer_jobs.items()}

    sim.pause()  # every generation stays in ``generating`` until the kill
    logical_date = datetime.now(timezone.utc).replace(microsecond=0)
    stack.unpause(DAG_ID)
    t_trigger = time.monotonic()
    stack.trigger(DAG_ID, RUN_ID, logical_date, {})
    timeline = TriggerTimeline(started=t_trigger)
    events: list[tuple[float, str]] = []
    killed_name = survivor_name = ""
    held_at_kill: Counter[int] = Counter()
    t_kill = 0.0
    try:
        wait_until(
            lambda: all_deferred_and_assigned(timeline.sample(topology)), 300, f"all {TASK_COUNT} tasks deferred"
        )
        # The scheduler must have processed each task's defer before its trigger fires (apache/airflow#67287).
        wait_until(lambda: stack.celery_tasks_running() == 0, 60, "the Celery worker to go idle")  # type: ignore[attr-defined]
        time.sleep(2)
        held_at_kill = holdings(timeline.sample(topology))
        events.append((time.monotonic() - t_trigger, f"all {TASK_COUNT} deferred, Celery worker idle"))
        killed_job, _ = held_at_kill.most_common(1)[0]
        killed_name = job_names[killed_job]
        survivor_name = next(name for name in job_names.values() if name != killed_name)
        stack.kill_component(killed_name)  # type: ignore[attr-defined]
        t_kill = time.monotonic() - t_trigger
        timeline.sample_reads(sim)  # read counts at the kill
        released = sim.resume()  # the generations finish while the killed triggerer's waits have no poller
        events.append((t_kill, f"{killed_name} SIGKILLed; simulator released {released} generations"))

        def waits_ended() -> bool:
            stack.assert_alive()
            current = timeline.sample(topology)
            timeline.sample_reads(sim)
            return all(state != "deferred" for _, state in current.values())

        wait_until(waits_ended, 120, "every wait to end", interval=SAMPLE_INTERVAL)
        events.append((time.monotonic() - t_trigger, "no task deferred any more"))

        def finished() -> str | None:
            timeline.sample(topology)
            state = stack.dag_run(DAG_ID, RUN_ID)["state"]
            return state if state in ("success", "failed") else None

        final_state = str(wait_until(finished, 240, "the run to finish", interval=1.0))
        events.append((time.monotonic() - t_trigger, f"run {final_state}"))
    finally:
        print_report(topology, timeline, events, job_names, held_at_kill, startup, t_start)
        if t_kill:
            print(summarize_kill(timeline, job_names, held_at_kill, killed_name, t_kill))

    instances = stack.task_instances(DAG_ID, RUN_ID)
    assert final_state == "success", Counter((t["task_id"], t["state"]) for t in instances)
    assert Counter(t["state"] for t in instances) == Counter({"success": TASK_COUNT})

    # The killed triggerer held waits (usually both do; Airflow decides the split, so the survivor may hold none);
    # the killed one's were all adopted by the survivor and ended in time.
    killed_job, survivor_job = topology.triggerer_jobs[killed_name], topology.triggerer_jobs[survivor_name]
    assert held_at_kill[killed_job] > 0 and set(held_at_kill) <= {killed_job, survivor_job}, held_at_kill
    orphans = [task for task, changes in timeline.history.items() if held_by(changes, killed_job, t_kill)]
    assert len(orphans) == held_at_kill[killed_job]
    # Each wait's first read after the kill is its end (the simulator released every generation then).
    runway_ids = {task_id: read_return_value(topology, task_id)["task_id"] for task_id in timeline.history}
    first_reads = {task_id: timeline.first_read_after_kill.get(runway_ids[task_id]) for task_id in runway_ids}
    print_first_reads(first_reads, orphans, t_kill)
    survivors = sorted(set(timeline.history) - set(orphans))
    for task_ids, bound in (
        (orphans, TRIGGERER_HEALTH_THRESHOLD + POLL_INTERVAL + ADOPTION_SLACK),  # adopted, then read at once
        (survivors, POLL_INTERVAL + ADOPTION_SLACK),  # the survivor's own waits: read within a poll
    ):
        for task_id in task_ids:
            history = (task_id, t_kill, first_reads[task_id], timeline.history[task_id])
            ended = timeline.first(task_id, lambda trig, state: state != "deferred", after=t_kill)
            if task_id in orphans:
                adopted = timeline.first(task_id, lambda trig, state: trig == survivor_job, after=t_kill)
                # A wait that ended between two samples was seen only ending: the one live triggerer ran it.
                adopted = adopted if adopted is not None else ended
                assert adopted is not None and adopted - t_kill <= bound, history
            assert first_reads[task_id] is not None and first_reads[task_id] - t_kill <= bound, history
            # Airflow handles the fired events one at a time: the last of the batch waits for the others.
            assert ended is not None and ended - t_kill <= bound + EVENT_HANDLING_SLACK * len(task_ids), history

    counters = sim.counters()
    assert counters["tasks_created"] == {sim.account_label(API_KEY): TASK_COUNT}
    assert counters["requests"]["generate"] == TASK_COUNT  # one creation per task, none after the kill
    assert counters["tasks_by_state"] == {"success": TASK_COUNT}

    # With download_to: the MP4 is stored and its path returned. Without: the result URL only.
    downloaded = read_return_value(topology, DOWNLOADING_TASK)
    video = Path(downloaded["video_path"].removeprefix("file://"))
    assert video.parent == output_dir / logical_date.strftime("%Y%m%d"), downloaded
    assert video.read_bytes()[4:8] == b"ftyp", video
    plain = read_return_value(topology, "generate_01")
    assert plain["state"] == "succeeded" and plain["video_url"].startswith(sim_process.url), plain
    assert "video_path" not in plain, plain
    assert sorted(p.name for p in output_dir.rglob("*.mp4")) == [video.name]


def print_first_reads(first_reads: dict[str, float | None], orphans: list[str], t_kill: float) -> None:
    for label, task_ids in (("adopted", orphans), ("survivor's own", sorted(set(first_reads) - set(orphans)))):
        seen = [t - t_kill for task in task_ids if (t := first_reads[task]) is not None]
        span = f"+{min(seen):.1f}s..+{max(seen):.1f}s" if seen else "none"
        print(f"first simulator read after the kill, {label} waits: {len(seen)}/{len(task_ids)} at {span}")


def summarize_kill(
    timeline: TriggerTimeline, job_names: dict[int, str], held: Counter[int], killed_name: str, t_kill: float
) -> str:
    """One line per triggerer: what it held at the kill, when those waits were adopted and when they ended."""
    lines = [f"kill summary (seconds after the SIGKILL at t={t_kill:.1f}s):"]
    for job, count in sorted(held.items()):
        name = job_names.get(job, str(job))
        tasks = [task for task, changes in timeline.history.items() if held_by(changes, job, t_kill)]
        ended = [timeline.first(task, lambda trig, state: state != "deferred", after=t_kill) for task in tasks]
        ends = [t - t_kill for t in ended if t is not None]
        line = f"  {name}: held {count}" + (" (killed)" if name == killed_name else "")
        if name == killed_name:

            def elsewhere(trig: int | None, state: str, job: int = job) -> bool:
                return trig not in (None, job)

            moved = [timeline.first(task, elsewhere, after=t_kill) for task in tasks]
            adopted = [t - t_kill for t in moved if t is not None]
            if adopted:
                line += f"; adopted {len(adopted)} at +{min(adopted):.1f}s..+{max(adopted):.1f}s"
        if ends:
            line += f"; ended {len(ends)} at +{min(ends):.1f}s..+{max(ends):.1f}s"
        lines.append(line)
    return "\n".join(lines)


def held_by(changes: list[tuple[float, int | None, str]], job: int, at: float) -> bool:
    """Whether the task's last state before ``at`` seconds was deferred on triggerer ``job``."""
    before = [(trig, state) for t, trig, state in changes if t <= at]
    return bool(before) and before[-1] == (job, "deferred")


def print_report(
    topology: Topology,
    timeline: TriggerTimeline,
    events: list[tuple[float, str]],
    job_names: dict[int, str],
    held_at_kill: Counter[int],
    startup: float,
    t_start: float,
) -> None:
    stack = topology.stack
    print(f"\n== production topology on Airflow {airflow_version}: {TASK_COUNT} deferrable Runway tasks")
    print(
        f"Postgres {topology.postgres.bin_dir} (as {topology.postgres.user or 'this user'}), "
        f"Redis {topology.redis.executable}; CeleryExecutor, 1 worker x {CELERY_CONCURRENCY}; "
        f"components: {', '.join(stack.components)}"
    )
    print(
        f"triggerer heartbeat {TRIGGERER_HEARTBEAT_SECONDS:.0f}s, health threshold {TRIGGERER_HEALTH_THRESHOLD:.0f}s, "
        f"poll {POLL_INTERVAL:.0f}s; triggerer jobs: "
        + ", ".join(f"{name}=job {job}" for job, name in sorted(job_names.items()))
    )
    print(f"startup (services, db migrate, components healthy, DAG parsed): {startup:.1f}s")
    print("  of which " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in stack.startup_timings.items()))
    print("held at the kill: " + ", ".join(f"{job_names.get(j, j)} {n}" for j, n in sorted(held_at_kill.items())))
    print("t: seconds since the run was triggered")
    for t, what in events:
        print(f"{t:7.1f}s ** {what}")
    for task_id in sorted(timeline.history):
        steps = " -> ".join(
            f"{t:.1f}s {state}" + (f"@{job_names.get(trig, trig)}" if trig else "")
            for t, trig, state in timeline.history[task_id]
        )
        print(f"  {task_id}: {steps}")
    print(f"whole test: {time.monotonic() - t_start:.1f}s")
