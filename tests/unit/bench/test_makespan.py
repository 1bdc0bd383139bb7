"""Unit tests of the makespan benchmark's measuring parts (no Airflow processes started)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.thread import SimulatorThread
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS
from bench import makespan

API_KEY = "bench-unit-key-0001"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SCHEDULER_LOG = """\
2026-12-01T00:02:13.525514Z [info     ] Workload finished              [supervisor] duration=10.5 exit_code=0 \
final_state=deferred loc=supervisor.py:2658 workload_id=01a2 workload_type=ExecuteTask
2026-12-01T00:02:40.000000Z [info     ] Received executor event with state success for task instance x
2026-12-01T00:02:41.100000Z [info     ] Workload finished              [supervisor] duration=3.25 exit_code=0 \
final_state=success loc=supervisor.py:2658 workload_id=01a3 workload_type=ExecuteTask
2026-12-01T00:09:00.000000Z [info     ] Workload finished              [supervisor] duration=99.0 exit_code=0 \
final_state=success loc=supervisor.py:2658 workload_id=01a4 workload_type=ExecuteTask
"""


def epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_task_processes_reads_the_supervisor_lines_of_the_window(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.write_text(SCHEDULER_LOG)

    found = makespan.task_processes(log, epoch("2026-12-01T00:02:00Z"), epoch("2026-12-01T00:05:00Z"))

    assert found == [(10.5, "deferred"), (3.25, "success")]  # the 00:09 line is another run's


def post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {API_KEY}")
    with NO_PROXY.open(request, timeout=10) as response:
        return json.loads(response.read())


def read_record(url: str, task_id: str) -> str:
    request = urllib.request.Request(f"{url}/api/v1/runway/record-detail?taskId={task_id}")
    request.add_header("Authorization", f"Bearer {API_KEY}")
    with NO_PROXY.open(request, timeout=10) as response:
        return str(json.loads(response.read())["data"]["state"])


def test_instrumented_simulator_records_the_first_read_that_sees_the_end() -> None:
    config = SimulatorConfig(wait_seconds=0.0, queueing_seconds=0.1, generating_seconds=0.4, seed=1)
    sim = SimulatorThread(config)
    detected = makespan.instrument(sim.simulator)
    with sim:
        body = {"prompt": "a boat", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}
        task_id = post_json(f"{sim.url}/api/v1/runway/generate", body)["data"]["taskId"]
        assert read_record(sim.url, task_id) != "success"
        assert makespan.detections(sim.url) == {}  # a read of an unfinished task is no detection

        completes_at = float(sim.task_info(task_id)["completes_at"])
        time.sleep(max(0.0, completes_at - time.time()) + 0.2)
        before_read = time.time()
        assert read_record(sim.url, task_id) == "success"
        first = makespan.detections(sim.url)
        assert read_record(sim.url, task_id) == "success"

        assert list(first) == [task_id]
        assert before_read <= first[task_id] <= time.time()
        assert first[task_id] - completes_at >= 0.2
        assert makespan.detections(sim.url) == first == detected  # later reads keep the first time


def result(variant: str, index: int, makespan_s: float, slot_s: float) -> makespan.RunResult:
    return makespan.RunResult(
        variant=variant,
        run_id=f"makespan_{variant}_{index}_1",
        state="success",
        videos=30,
        makespan=makespan_s,
        limit=66.0,
        worker_slot_seconds=slot_s,
        ti_duration_seconds=0.0,
        task_processes=60,
        task_process_seconds=slot_s,
        final_process_median=2.5,
        reads=174,
        creations=30,
        refused_creates=0,
        poll_lag=None,
    )


def test_table_and_summary_show_every_run_and_the_ratios() -> None:
    results = [result("A", 0, 72.6, 150.0), result("B", 0, 79.2, 825.0)]

    table = makespan.table(results)
    summary = makespan.summary(results)

    lines = table.splitlines()
    assert lines[0].split()[:5] == ["run", "state", "makespan", "s", "/"]
    assert len(lines) == 4
    assert lines[2].split()[:4] == ["A0", "success", "72.6", "1.10"]
    assert "5.80" in lines[2]  # reads per video
    assert lines[3].split()[:4] == ["B0", "success", "79.2", "1.20"]
    assert "-" in lines[2].split()  # an unmeasured figure shows as '-'
    assert "A/B (means): makespan 0.92, worker-slot seconds 0.18 (B holds 5.5x the worker time of A)" in summary


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"task_id": "abc", "state": "succeeded"}, "abc"), ("abc", "abc"), ({"state": "x"}, None), (None, None)],
)
def test_sim_task_id(value: Any, expected: str | None) -> None:
    assert makespan.sim_task_id(value) == expected


def test_percentile_and_median() -> None:
    assert makespan.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == 5.0
    assert makespan.percentile([], 0.9) is None
    assert makespan.median([3.0, 1.0, 2.0]) == 2.0


def load_dag_file(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"makespan_dag_file_{name[:-3]}", makespan.DAGS_FOLDER / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the benchmark runs on Airflow 3")
def test_dags_bound_generations_by_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAKESPAN_VIDEOS", "12")
    monkeypatch.setenv("MAKESPAN_POLL_INTERVAL", "5")
    provider, http = load_dag_file("makespan_provider.py"), load_dag_file("makespan_http.py")

    assert len(provider.PROMPTS) == len(http.PROMPTS) == 12
    assert (provider.provider_dag.dag_id, http.http_dag.dag_id) == ("makespan_provider", "makespan_http")
    assert {v.dag_file for v in makespan.VARIANTS.values()} == {"makespan_provider.py", "makespan_http.py"}
    generate = provider.provider_dag.get_task("generate")
    assert generate.operator_class is provider.RunwayGenerateOperator
    assert generate.partial_kwargs["pool"] == makespan.POOL
    assert generate.partial_kwargs["deferrable"] is True
    create = http.http_dag.get_task("video.create")
    wait = http.http_dag.get_task("video.wait")
    assert create.pool == wait.pool == makespan.POOL
    # A freed slot goes to a waiting sensor first: never an 11th generation on the account.
    assert wait.priority_weight > create.priority_weight
    # ... as it is: with the default rule the create would carry its sensor's weight too.
    assert "absolute" in str(create.weight_rule).lower() and "absolute" in str(wait.weight_rule).lower()
    assert wait.mode == "poke" and wait.poke_interval == 5
    assert create.retries > 0  # a create refused over the account's limit tries again


def test_http_route_create_fails_on_a_refused_create() -> None:
    module = load_dag_file("makespan_http.py")

    class Response:
        def __init__(self, body: dict[str, Any]) -> None:
            self.body = body

        def json(self) -> dict[str, Any]:
            return self.body

    assert module.created_task_id(Response({"code": 200, "msg": "success", "data": {"taskId": "t-9"}})) == "t-9"
    refused = {"code": 400, "msg": "Reached the limit for concurrent generations", "data": None}
    with pytest.raises(RuntimeError, match="create refused: 400 Reached the limit"):
        module.created_task_id(Response(refused))


def test_a_larger_pool_is_set_against_the_uncontended_run_of_the_same_variant() -> None:
    contended = dataclasses.replace(result("A", 0, 79.2, 225.0), pool=20, creations=30, refused_creates=12)
    summary = makespan.summary([result("A", 0, 72.6, 150.0), contended])

    assert makespan.table([contended]).splitlines()[2].split()[0] == "A@20/0"
    assert "A@20 = provider, deferrable=True, poll 5 s, pool 20:" in summary
    assert "refused creates 12-12" in summary
    assert "A@20 vs A (means): worker-slot s per video 7.50 vs 5.00 = 1.50x; makespan 1.20x the physical limit" in (
        summary
    )
