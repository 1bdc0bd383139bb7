"""The Runway operators in real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_runway.core.results import RESULT_KEYS
from airflow_provider_runway.operators.runway import (
    RunwayAlephOperator,
    RunwayExtendOperator,
    RunwayGenerateOperator,
)
from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from tests.integration.airflow_compat import extra_link

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {"poll_interval": 0.05}
DROPS_NONE_VALUES = AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS
_ids = itertools.count()


def new_dag(name: str, **kwargs: Any) -> DAG:
    return DAG(f"{name}_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), **kwargs)


def link(dag_run: Any, task_id: str) -> Any:
    """What the operator's "Runway Result" extra link shows for the task instance."""
    return extra_link(dag_run.dag_id, dag_run.run_id, task_id, "RunwayTaskLink", "Runway Result")


def created(sim: Any) -> int:
    return int(sum(sim.counters().get("tasks_created", {}).values()))


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_generate_success(deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    with new_dag("gen_ok") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox in the snow", deferrable=deferrable, **FAST)
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    result = xcom(dr, "gen")
    if DROPS_NONE_VALUES:  # Airflow 3.0 cannot store a None XCom: those keys are left out
        assert tuple(result) == tuple(key for key in RESULT_KEYS if key in result)
        droppable = {"parent_task_id", "fail_code", "fail_message", "created_at", "completed_at", "quality"}
        assert set(RESULT_KEYS) - set(result) <= droppable
        assert xcom(dr, "gen", "parent_task_id") is None  # no row stored for it
    else:
        assert tuple(result) == RESULT_KEYS
        assert result["parent_task_id"] is None
    assert result["state"] == "succeeded"
    assert result["family"] == "runway"
    assert result["video_url"].startswith(runway_conn.url)
    assert result["image_url"].startswith(runway_conn.url)
    assert xcom(dr, "gen", "runway_task_id") == result["task_id"]
    assert xcom(dr, "gen", "video_url") == result["video_url"]  # multiple_outputs
    assert link(dr, "gen") == result["video_url"]
    assert runway_conn.task_info(result["task_id"])["state"] == "success"
    assert created(runway_conn) == 1


@pytest.mark.runway_sim(failure_rate=1.0)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_generate_remote_failure_is_final(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    with new_dag("gen_fail") as dag:
        RunwayGenerateOperator(
            task_id="gen", on_failure_callback=failures[0], prompt="x", deferrable=deferrable, retries=2, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}  # no retry: a new task would cost credits again
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "fail"
    assert link(dr, "gen").endswith(f"/api/v1/runway/record-detail?taskId={task_id}")
    assert created(runway_conn) == 1
    assert len(failures[1]) == 1
    assert f"AirflowFailException: Runway task {task_id} failed (fail code" in failures[1][0]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_generate_timeout(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    runway_conn.pause()  # tasks stay in "generating"
    with new_dag("gen_timeout") as dag:
        RunwayGenerateOperator(
            task_id="gen", on_failure_callback=failures[0], prompt="x", deferrable=deferrable, timeout=0.6, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "generating"
    assert created(runway_conn) == 1
    assert len(failures[1]) == 1
    assert failures[1][0].startswith(f"RunwayTaskTimeoutError: Runway task {task_id} did not finish")
    assert "waited" in failures[1][0]


@pytest.mark.parametrize("runway_sim", ["body", "http"], indirect=True)
def test_insufficient_credits_fails_without_retry(
    runway_conn: Any, sim_api_key: str, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    runway_conn.set_credits(sim_api_key, 0)
    with new_dag("gen_402") as dag:
        RunwayGenerateOperator(task_id="gen", on_failure_callback=failures[0], prompt="x", retries=2, **FAST)
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    assert xcom(dr, "gen", "runway_task_id") is None
    assert link(dr, "gen") == ""
    assert created(runway_conn) == 0
    assert len(failures[1]) == 1
    assert failures[1][0].startswith("AirflowFailException: Runway refused to create the task: [402]")


def test_rendered_invalid_value_fails_at_once_and_creates_nothing(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    with new_dag("gen_invalid", params={"duration": 10}) as dag:
        RunwayGenerateOperator(
            task_id="gen",
            on_failure_callback=failures[0],
            prompt="x",
            quality="1080p",
            duration="{{ params.duration }}",
            retries=2,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    assert created(runway_conn) == 0
    assert runway_conn.counters()["requests_total"] == 0
    assert len(failures[1]) == 1
    assert "AirflowFailException: gen: Invalid quality='1080p'" in failures[1][0]
    assert "no Runway task was created" in failures[1][0]


def test_wait_for_completion_false_returns_right_after_creation(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    runway_conn.pause()
    with new_dag("gen_nowait") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="x", wait_for_completion=False, **FAST)
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    result = xcom(dr, "gen")
    assert set(result) == {"task_id", "family", "state"}
    assert result["state"] == "pending"
    assert runway_conn.task_info(result["task_id"])["state"] in ("wait", "queueing", "generating")


def test_image_to_video_and_extend_chained_through_xcom(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    with new_dag("chain") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="A paper boat", deferrable=True, **FAST)
        RunwayGenerateOperator(
            task_id="animate",
            prompt="It drifts",
            image_url=XComArg(gen, key="image_url"),
            aspect_ratio=None,
            quality="1080p",
            **FAST,
        )
        ext = RunwayExtendOperator(
            task_id="ext", source_task_id=XComArg(gen, key="task_id"), prompt="And sails away", **FAST
        )
        ext2 = RunwayExtendOperator(
            task_id="ext2",
            source_task_id="{{ ti.xcom_pull(task_ids='ext', key='runway_task_id') }}",
            prompt="Into the sunset",
            deferrable=True,
            **FAST,
        )
        ext >> ext2
    dr = run_dag(dag)
    assert ti_states(dr) == {
        "gen": ("success", 1),
        "animate": ("success", 1),
        "ext": ("success", 1),
        "ext2": ("success", 1),
    }
    gen_id = xcom(dr, "gen", "task_id")
    assert xcom(dr, "ext", "parent_task_id") == gen_id
    assert xcom(dr, "ext2", "parent_task_id") == xcom(dr, "ext", "task_id")
    assert created(runway_conn) == 4


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_aleph_success(deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    with new_dag("aleph_ok") as dag:
        RunwayAlephOperator(
            task_id="aleph",
            prompt="Make it night",
            video_url="https://example.com/in.mp4",
            aspect_ratio="21:9",
            deferrable=deferrable,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"aleph": ("success", 1)}
    result = xcom(dr, "aleph")
    assert result["family"] == "aleph"
    assert result["video_url"].startswith(runway_conn.url)
    assert link(dr, "aleph") == result["video_url"]


@pytest.mark.runway_sim(failure_rate=1.0)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_aleph_remote_failure(deferrable: bool, runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any) -> None:
    with new_dag("aleph_fail") as dag:
        RunwayAlephOperator(
            task_id="aleph",
            on_failure_callback=failures[0],
            prompt="x",
            video_url="https://example.com/in.mp4",
            deferrable=deferrable,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"aleph": ("failed", 1)}
    assert created(runway_conn) == 1
    assert len(failures[1]) == 1
    assert "failed (fail code" in failures[1][0]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_aleph_timeout(deferrable: bool, runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any) -> None:
    runway_conn.pause()
    with new_dag("aleph_timeout") as dag:
        RunwayAlephOperator(
            task_id="aleph",
            on_failure_callback=failures[0],
            prompt="x",
            video_url="https://example.com/in.mp4",
            deferrable=deferrable,
            timeout=timedelta(seconds=0.8),
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"aleph": ("failed", 1)}
    assert len(failures[1]) == 1
    assert "RunwayTaskTimeoutError" in failures[1][0]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_extend_remote_failure(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    with new_dag("ext_fail") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="x", **FAST)
        ExtendFailingFirst(
            on_failure_callback=failures[0],
            task_id="ext",
            source_task_id=XComArg(gen, key="task_id"),
            prompt="y",
            deferrable=deferrable,
            retries=2,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1), "ext": ("failed", 1)}
    assert len(failures[1]) == 1
    assert "(fail code 400): Inappropriate content detected" in failures[1][0]
    assert created(runway_conn) == 2


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_extend_timeout(deferrable: bool, runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any) -> None:
    with new_dag("ext_timeout") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="x", **FAST)
        PausingExtend(
            on_failure_callback=failures[0],
            task_id="ext",
            source_task_id=XComArg(gen, key="task_id"),
            prompt="y",
            deferrable=deferrable,
            timeout=0.6,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1), "ext": ("failed", 1)}
    assert len(failures[1]) == 1
    assert "RunwayTaskTimeoutError" in failures[1][0]
    assert "did not finish" in failures[1][0]


class ExtendFailingFirst(RunwayExtendOperator):
    """Fails its Runway task in the simulator right after creating it."""

    def submit_job(self, context: Any) -> str:
        task_id = super().submit_job(context)
        SimulatorClient(self.hook.base_url).fail_task(task_id, code=400, message="Inappropriate content detected")
        return task_id


class PausingExtend(RunwayExtendOperator):
    """Holds every task of the simulator in "generating" before creating its own."""

    def submit_job(self, context: Any) -> str:
        SimulatorClient(self.hook.base_url).pause()
        return super().submit_job(context)


@pytest.mark.runway_sim(wait_seconds=0.01, queueing_seconds=0.01, generating_seconds=0.05)
def test_mapped_batch_of_20_prompts(runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any) -> None:
    prompts = [f"Product shot {n}: a ceramic mug, slow orbit" for n in range(20)]
    with new_dag("mapped") as dag:
        RunwayGenerateOperator.partial(task_id="gen", deferrable=True, poll_interval=0.02).expand(prompt=prompts)
    dr = run_dag(dag)
    states = ti_states(dr)
    assert states == {f"gen[{i}]": ("success", 1) for i in range(20)}
    task_ids = {xcom(dr, "gen", "task_id", map_index=i) for i in range(20)}
    assert len(task_ids) == 20
    assert created(runway_conn) == 20
    assert all(runway_conn.task_info(task_id)["state"] == "success" for task_id in task_ids)


def test_download_to_stores_the_video(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, tmp_path: Path
) -> None:
    with new_dag("download") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="x", download_to=str(tmp_path) + "/{{ ds_nodash }}/", **FAST)
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    result = xcom(dr, "gen")
    stored = Path(str(result["video_path"]).removeprefix("file://"))
    assert stored.is_file()
    assert stored.stat().st_size == result["video_size"] > 0
    assert str(tmp_path) in str(stored)


# -- resume instead of resubmit --------------------------------------------------------------------


class CrashingFirstTry(RunwayGenerateOperator):
    """Loses its first try right after the Runway task was created and its id stored.

    ``wait_until`` lets the remote task reach that simulator state before the crash. With
    ``fail_remote`` the first try does not crash: its remote task fails, and so does the try; run it with the
    simulator paused (so the generation cannot finish before it is failed), and the next try releases it.
    """

    def __init__(self, *, wait_until: str | None = None, fail_remote: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_until = wait_until
        self.fail_remote = fail_remote

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        if context["ti"].try_number == 1:
            sim = SimulatorClient(self.hook.base_url)
            if self.fail_remote:
                sim.fail_task(str(external_id), code=500, message="Internal error")
                super().poll_until_complete(external_id, context)
                return
            if self.wait_until:
                sim.wait_for(str(external_id), self.wait_until)
            raise RuntimeError("simulated worker loss after the Runway task was created")
        if self.fail_remote:
            SimulatorClient(self.hook.base_url).resume()
        super().poll_until_complete(external_id, context)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize("wait_until", [None, "success"], ids=["active", "succeeded"])
def test_retry_attaches_instead_of_paying_twice(
    deferrable: bool, wait_until: str | None, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    with new_dag("resume") as dag:
        CrashingFirstTry(
            task_id="gen",
            prompt="x",
            wait_until=wait_until,
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(0),
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 2)}
    assert created(runway_conn) == 1
    (only_task,) = runway_conn.tasks()
    assert xcom(dr, "gen", "task_id") == only_task["task_id"]
    assert xcom(dr, "gen", "state") == "succeeded"


def test_retry_after_remote_failure_creates_a_new_task_when_opted_in(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    runway_conn.pause()
    with new_dag("resume_failed") as dag:
        CrashingFirstTry(
            task_id="gen",
            prompt="x",
            fail_remote=True,
            retry_remote_failures=True,
            retries=1,
            retry_delay=timedelta(0),
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 2)}
    assert created(runway_conn) == 2
    states = {task["task_id"]: task["state"] for task in runway_conn.tasks()}
    assert states[xcom(dr, "gen", "task_id")] == "success"
    assert sorted(states.values()) == ["fail", "success"]


def test_deferred_task_ends_at_its_execution_timeout(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, failures: Any
) -> None:
    """While deferred, execution_timeout (3 s here) ends the wait even when ``timeout`` (30 min) is far away."""
    import time

    runway_conn.configure(generating_seconds=600.0)  # a slow generation
    with new_dag("exec_timeout") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            on_failure_callback=failures[0],
            prompt="x",
            deferrable=True,
            timeout=timedelta(minutes=30),
            execution_timeout=timedelta(seconds=3),
            poll_interval=0.2,
        )
    started = time.monotonic()
    dr = run_dag(dag)
    elapsed = time.monotonic() - started
    print(f"deferred task with execution_timeout=3s, timeout=30min ended after {elapsed:.1f} s")
    assert ti_states(dr)["gen"][0] == "failed"
    task_id = xcom(dr, "gen", "runway_task_id")
    assert runway_conn.task_info(task_id)["state"] == "generating"
    assert len(failures[1]) == 1
    assert failures[1][0].startswith(f"RunwayTaskTimeoutError: Runway task {task_id} did not finish within the ")
    assert "execution_timeout of 3 s" in failures[1][0]
    # Ended by execution_timeout, not by the 30-minute timeout: one read per poll for about 3 s.
    assert runway_conn.counters()["requests"]["record-detail"] <= 3 / 0.2 + 2
