"""Issue 14's "Today's API" and the concurrency wait, through the operators in real Airflow against the simulator.

Each test runs a DAG with ``dag.test()`` against the bundled simulator over loopback HTTP and checks
what the user sees: the task instance's state and try number, the failure message, the XCom result,
and the simulator's counters (what was created, and so charged).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_runway.operators.runway import (
    RunwayAlephOperator,
    RunwayExtendOperator,
    RunwayGenerateOperator,
)
from airflow_provider_runway.simulator.client import SimulatorClient
from tests.integration.conftest import SIM_API_KEY

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {"poll_interval": 0.05}
VIDEO = "https://example.com/in.mp4"
_ids = itertools.count()


def new_dag(name: str, **kwargs: Any) -> DAG:
    return DAG(f"todays_{name}_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), **kwargs)


def counter(sim: Any, name: str) -> int:
    return int(sum(SimulatorClient(sim.url).counters().get(name, {}).values()))


def api(sim: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call of the simulator's KIE API with the connection's key; returns ``data``."""
    request = urllib.request.Request(
        f"{sim.url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {SIM_API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def use_sim(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the ``runway_default`` connection at ``sim``."""
    conn = {"conn_type": "runway", "host": sim.url, "password": SIM_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


def aleph(task_id: str = "aleph", **kwargs: Any) -> RunwayAlephOperator:
    return RunwayAlephOperator(task_id=task_id, prompt="Make it night", video_url=VIDEO, **{**FAST, **kwargs})


# -- successFlag 2 / 3 ----------------------------------------------------------------------------


@pytest.mark.runway_sim(aleph_failure_flags=True, failure_rate=1.0, failure_message="Video content rejected")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_aleph_failure_reported_with_success_flag_carries_kie_message(
    deferrable: bool, runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    with new_dag("flag") as dag:
        aleph(on_failure_callback=failures[0], deferrable=deferrable, retries=2)
    dr = run_dag(dag)
    assert ti_states(dr) == {"aleph": ("failed", 1)}  # a generation failure: not retried (it would pay again)
    assert len(failures[1]) == 1
    assert "Video content rejected" in failures[1][0]
    assert "no video URL" not in failures[1][0]
    assert counter(runway_conn, "tasks_created") == 1


# -- 408 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_408_on_status_reads_is_transient(
    deferrable: bool, runway_conn: Any, run_dag: Any, ti_states: Any, xcom: Any
) -> None:
    SimulatorClient(runway_conn.url).inject_fault("record-detail", "http408", count=3)
    with new_dag("read408") as dag:
        RunwayGenerateOperator(
            task_id="gen", prompt="A fox", deferrable=deferrable, runway_retry_delay=0.05, retries=0, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    assert xcom(dr, "gen", "state") == "succeeded"
    assert SimulatorClient(runway_conn.url).counters()["faults_fired"].get("http408") == 3


def test_408_on_create_is_an_unknown_outcome_not_retried(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    SimulatorClient(runway_conn.url).inject_fault("generate", "http408", count=1)
    with new_dag("create408") as dag:
        RunwayGenerateOperator(
            task_id="gen", prompt="A fox", on_failure_callback=failures[0], retries=2, runway_retry_delay=0.05, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    assert "outcome is unknown" in failures[1][0]
    assert "[408]" in failures[1][0]
    assert SimulatorClient(runway_conn.url).counters()["requests"]["generate"] == 1  # sent once, never repeated


# -- generateTime is the completion time ------------------------------------------------------------


@pytest.mark.runway_sim(generating_seconds=1.0)
def test_generate_time_is_the_completion_time_in_the_result(runway_conn: Any, run_dag: Any, xcom: Any) -> None:
    with new_dag("times") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox", **FAST)
    dr = run_dag(dag)
    created_at = xcom(dr, "gen", "created_at")
    completed_at = xcom(dr, "gen", "completed_at")
    assert completed_at is not None
    record = api(runway_conn, f"/api/v1/runway/record-detail?taskId={xcom(dr, 'gen', 'task_id')}")
    generate_time = record["generateTime"]
    done = datetime.fromisoformat(completed_at)
    assert generate_time  # KIE's completion time, which the result reports as completed_at
    assert done.strftime("%Y-%m-%d %H:%M:%S") == generate_time
    if created_at is not None:
        assert datetime.fromisoformat(created_at) < done


# -- extending a 1080p source ------------------------------------------------------------------------


def test_extend_of_a_1080p_source_fails_before_spending_when_its_quality_is_known(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any, xcom: Any
) -> None:
    with new_dag("ext1080_known") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="A paper boat", quality="1080p", **FAST)
        RunwayExtendOperator(
            task_id="ext",
            source_task_id=XComArg(gen, key="task_id"),
            source_quality=XComArg(gen, key="quality"),
            prompt="And sails away",
            on_failure_callback=failures[0],
            retries=2,
            **FAST,
        )
    dr = run_dag(dag)
    assert xcom(dr, "gen", "quality") == "1080p"
    assert ti_states(dr) == {"gen": ("success", 1), "ext": ("failed", 1)}
    assert "KIE cannot extend a video generated at 1080p" in failures[1][0]
    assert "no Runway task was created" in failures[1][0]
    counters = SimulatorClient(runway_conn.url).counters()
    assert counters["requests"].get("extend", 0) == 0  # refused before any request
    assert counter(runway_conn, "tasks_created") == 1


def test_extend_of_a_1080p_source_fails_with_kies_message_when_its_quality_is_unknown(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    with new_dag("ext1080_unknown") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="A paper boat", quality="1080p", **FAST)
        RunwayExtendOperator(
            task_id="ext",
            source_task_id=XComArg(gen, key="task_id"),
            prompt="And sails away",
            on_failure_callback=failures[0],
            retries=2,
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1), "ext": ("failed", 1)}
    assert "cannot be extended" in failures[1][0]
    assert "KIE extends only videos generated at 720p" in failures[1][0]
    assert counter(runway_conn, "tasks_created") == 1


# -- Aleph not served -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["404", "422", "505"])
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_aleph_not_served_fails_in_one_try_and_creates_nothing(
    mode: str, deferrable: bool, runway_sim_factory: Any, monkeypatch: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    sim = runway_sim_factory(aleph_mode=mode)
    use_sim(sim, monkeypatch)
    with new_dag("aleph_off") as dag:
        aleph(on_failure_callback=failures[0], deferrable=deferrable, retries=3, runway_retry_delay=0.05)
    dr = run_dag(dag)
    assert ti_states(dr) == {"aleph": ("failed", 1)}
    assert len(failures[1]) == 1
    assert "AirflowFailException" in failures[1][0]
    assert "Runway Aleph is not served for this account" in failures[1][0]
    counters = SimulatorClient(sim.url).counters()
    assert counter(sim, "tasks_created") == 0
    assert counters["requests"].get("aleph-generate") == 1  # one request: no HTTP retry either


# -- the concurrency limit is a wait -------------------------------------------------------------------


def occupy_slot(sim: Any) -> str:
    """Create one task outside Airflow with the same key, so the account's only slot is busy for a while."""
    body = {"prompt": "blocker", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}
    return str(api(sim, "/api/v1/runway/generate", body)["taskId"])


@contextmanager
def slot_held_until(sim: Any, turned_away: Callable[[], bool], timeout: float = 120.0) -> Iterator[str]:
    """Hold the account's one slot with a blocker until KIE has turned the operator away at least once.

    The simulator is paused, so the blocker stays ``generating`` however long Airflow takes to start the task; a
    thread releases it once ``turned_away()`` (read from the simulator's counters) is true. Yields the blocker's id.
    """
    client = SimulatorClient(sim.url)
    client.pause()
    blocker = occupy_slot(sim)
    done = threading.Event()

    def release() -> None:
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline and not turned_away():
            time.sleep(0.05)
        client.resume()

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield blocker
    finally:
        done.set()
        releaser.join(timeout=10)


@pytest.fixture
def short_deferred_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deferrable operator's least pause for capacity, 15 s, made 0.5 s.

    The 15 s guard is for the scheduler's race with an ending task process (apache/airflow#67287); ``dag.test()``
    runs tasks and triggers in one process, with no scheduler to race. The unit tests keep the 15 s.
    """
    monkeypatch.setattr("airflow_provider_runway.operators.runway.MIN_DEFERRED_PAUSE", 0.5)


@pytest.mark.parametrize("mode", ["fail_task", "refuse"])
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_busy_account_makes_the_operator_wait_not_fail(
    mode: str,
    deferrable: bool,
    runway_sim_factory: Any,
    monkeypatch: Any,
    short_deferred_pause: None,
    run_dag: Any,
    ti_states: Any,
    xcom: Any,
) -> None:
    sim = runway_sim_factory(concurrency_limit=1, concurrency_mode=mode, generating_seconds=1)

    def turned_away() -> bool:
        if mode == "fail_task":
            return counter(sim, "concurrency_failures") >= 1
        return int(SimulatorClient(sim.url).counters()["requests"].get("generate", 0)) >= 2

    use_sim(sim, monkeypatch)
    with new_dag("busy") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox", deferrable=deferrable, retries=0, poll_interval=0.2)
    with slot_held_until(sim, turned_away) as blocker:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    task_id = xcom(dr, "gen", "task_id")
    assert task_id != blocker
    counters = SimulatorClient(sim.url).counters()
    assert counter(sim, "tasks_created") == 2  # the blocker and the operator's task: none paid twice
    if mode == "fail_task":
        assert counter(sim, "concurrency_failures") >= 1  # accepted, then failed for the limit, then replaced
    else:
        assert counters["requests"]["generate"] >= 3  # the blocker, at least one refusal, the create


# -- issue 23: KIE's current pages (items 7-10) ----------------------------------------------------------

FREE_ACCOUNT = "Please try again later. You can upgrade to Standard membership to start generating now."


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_reached_usage_cap_fails_the_task_at_once_naming_the_cap(
    deferrable: bool, runway_sim_factory: Any, monkeypatch: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    sim = runway_sim_factory(usage_cap_creates=1, usage_cap_period="daily")
    use_sim(sim, monkeypatch)
    occupy_slot(sim)  # the key's one create of the day
    with new_dag("cap") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            prompt="A fox",
            deferrable=deferrable,
            retries=2,
            retry_delay=timedelta(0),
            timeout=3,  # before the fix the 429 was retried, then waited for, until this deadline
            runway_retry_delay=0.05,
            on_failure_callback=failures[0],
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    [message] = failures[1]
    assert "AirflowFailException" in message and "daily usage cap" in message and "not retried" in message
    counters = SimulatorClient(sim.url).counters()
    assert counters["requests"]["generate"] == 2  # the blocker's and the operator's one request: no HTTP retry
    assert counter(sim, "tasks_created") == 1


def test_an_address_off_the_ip_whitelist_fails_naming_the_whitelist(
    runway_sim_factory: Any, monkeypatch: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    sim = runway_sim_factory(allowed_ips="10.0.0.7")
    use_sim(sim, monkeypatch)
    with new_dag("ip") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox", retries=2, on_failure_callback=failures[0], **FAST)
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    [message] = failures[1]
    assert "You do not have access permissions" in message
    assert "check the API key, and the key's IP whitelist in KIE's dashboard" in message
    assert SimulatorClient(sim.url).counters()["ip_refused"] == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_the_free_account_capacity_message_makes_the_operator_wait_not_fail(
    deferrable: bool,
    runway_sim_factory: Any,
    monkeypatch: Any,
    short_deferred_pause: None,
    run_dag: Any,
    ti_states: Any,
    xcom: Any,
) -> None:
    sim = runway_sim_factory(
        concurrency_limit=1, concurrency_mode="fail_task", concurrency_message=FREE_ACCOUNT, generating_seconds=1
    )
    use_sim(sim, monkeypatch)
    with new_dag("free") as dag:
        RunwayGenerateOperator(task_id="gen", prompt="A fox", deferrable=deferrable, retries=0, poll_interval=0.2)
    with slot_held_until(sim, lambda: counter(sim, "concurrency_failures") >= 1) as blocker:
        dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    assert xcom(dr, "gen", "task_id") != blocker
    assert counter(sim, "tasks_created") == 2  # none paid twice
    assert counter(sim, "concurrency_failures") >= 1  # failed with the free accounts' message, then replaced


@pytest.mark.runway_sim(record_style="ids")
def test_the_parent_of_an_extension_is_read_from_parent_id(runway_conn: Any, run_dag: Any, xcom: Any) -> None:
    with new_dag("ids") as dag:
        gen = RunwayGenerateOperator(task_id="gen", prompt="A paper boat", **FAST)
        RunwayExtendOperator(task_id="ext", source_task_id=XComArg(gen, key="task_id"), prompt="It sails", **FAST)
    dr = run_dag(dag)
    source = xcom(dr, "gen", "task_id")
    assert xcom(dr, "ext", "parent_task_id") == source
    record = api(runway_conn, f"/api/v1/runway/record-detail?taskId={xcom(dr, 'ext', 'task_id')}")
    assert "parentTaskId" not in record and record["parentId"] == source


def test_an_upload_that_is_not_an_image_fails_the_task_once_with_kies_words(
    runway_conn: Any, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    uploaded = requests.post(
        f"{runway_conn.url}/api/file-stream-upload",
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        files={"file": ("notes.txt", b"not an image")},
        data={"uploadPath": "in"},
        timeout=10,
    ).json()["data"]["downloadUrl"]
    with new_dag("badimage") as dag:
        RunwayGenerateOperator(
            task_id="gen", prompt="A fox", image_url=uploaded, retries=2, on_failure_callback=failures[0], **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    assert "Incorrect image format." in failures[1][0]
    assert SimulatorClient(runway_conn.url).counters()["requests"]["generate"] == 1


def test_the_hook_sends_extends_image_url_and_expand_prompt(runway_conn: Any) -> None:
    from airflow_provider_runway.core import ExtendRequest, GenerateRequest
    from airflow_provider_runway.hooks.runway import RunwayHook

    hook = RunwayHook()
    source = hook.create_task(GenerateRequest(prompt="A paper boat"))
    SimulatorClient(runway_conn.url).wait_for(source, "success")
    image = f"{runway_conn.url}/files/{source}.png"
    extension = hook.create_task(
        ExtendRequest(source_task_id=source, prompt="And then", image_url=image, expand_prompt=False)
    )
    params = api(runway_conn, f"/api/v1/runway/record-detail?taskId={extension}")["generateParam"]
    assert (params["imageUrl"], params["expandPrompt"]) == (image, False)
