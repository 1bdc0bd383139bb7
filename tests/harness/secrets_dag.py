"""The secrets DAG: every operator run once with ``dag.test()``, then every surface scanned for the keys."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.faults import Harness, ScenarioResult, environment
from tests.harness.leaks import (
    API_KEY,
    SECRETS,
    WEBHOOK_KEY,
    WRONG_API_KEY,
    LeakWatch,
    captured_fds,
    count_leaks,
    count_leaks_in_bytes,
)
from tests.harness.operators import RETRY_DELAY
from tests.harness.servers import CallbackInbox
from tests.integration.airflow_compat import serialize_dag, xcom_model

#: A marker that must be found where rendered templates and XComs are kept (the scan's own control).
CANARY_PROMPT = "LEAKCHECK-CANARY a lighthouse at dawn"
SECRETS_DAG_ID = "runway_secrets_leakcheck"
SECRETS_ROW = "secrets: whole DAG via dag.test()"
#: Task ids of the secrets DAG and the state each must end in.
SECRETS_EXPECTED: dict[str, str] = {
    "generate_sync": "success",
    "generate_deferred": "success",
    "extend_deferred": "success",
    "aleph_sync": "success",
    "sensor_deferred": "success",
    "verify_callbacks": "success",
    "reject_tampered_callback": "failed",
    "wrong_api_key": "failed",
    "deferred_timeout": "failed",
}


def build_secrets_dag(inbox: CallbackInbox, download_dir: Path, failures: list[str]) -> Any:
    """Every operator, sync and deferrable, success and failure paths, and webhook verification."""
    from airflow.providers.common.compat.sdk import DAG, XComArg, task

    from airflow_provider_runway.operators.runway import (
        RunwayAlephOperator,
        RunwayExtendOperator,
        RunwayGenerateOperator,
    )
    from airflow_provider_runway.sensors.runway import RunwayTaskSensor
    from airflow_provider_runway.transfer.callbacks import verify_runway_callback

    def record_failure(context: Any) -> None:
        failures.append(f"{context['ti'].task_id}: {type(context['exception']).__name__}: {context['exception']}")

    fast: dict[str, Any] = {"poll_interval": 0.05, "runway_retry_delay": RETRY_DELAY, "timeout": 60}
    with DAG(
        SECRETS_DAG_ID,
        schedule=None,
        start_date=datetime.datetime(2024, 1, 1),
        params={"prompt": CANARY_PROMPT},
        default_args={"on_failure_callback": record_failure},
        catchup=False,
    ) as dag:
        generate = RunwayGenerateOperator(
            task_id="generate_sync",
            prompt="{{ params.prompt }}",
            callback_url=inbox.url,
            download_to=f"file://{download_dir}/",
            **fast,
        )
        deferred = RunwayGenerateOperator(
            task_id="generate_deferred",
            prompt="{{ params.prompt }} (deferred)",
            callback_url=inbox.url,
            deferrable=True,
            **fast,
        )
        RunwayExtendOperator(
            task_id="extend_deferred",
            source_task_id=XComArg(generate, key="task_id"),
            prompt="{{ params.prompt }} (continued)",
            deferrable=True,
            **fast,
        )
        RunwayAlephOperator(
            task_id="aleph_sync",
            prompt="{{ params.prompt }} in snow",
            video_url="https://cdn.example.com/in.mp4",
            **fast,
        )
        RunwayTaskSensor(
            task_id="sensor_deferred",
            runway_task_id=XComArg(deferred, key="task_id"),
            deferrable=True,
            poke_interval=0.05,
            timeout=60,
        )
        RunwayGenerateOperator(
            task_id="wrong_api_key", prompt="{{ params.prompt }}", runway_conn_id="runway_badkey", **fast
        )
        RunwayGenerateOperator(
            task_id="deferred_timeout",
            prompt="{{ params.prompt }} (too slow)",
            deferrable=True,
            poll_interval=0.05,
            timeout=0.05,
        )

        @task(task_id="verify_callbacks")
        def verify_callbacks() -> list[str]:
            verified = [verify_runway_callback(headers, body).task_id for headers, body in inbox.wait(2)]
            if len(verified) < 2:
                raise RuntimeError(f"expected 2 callbacks, got {len(verified)}")
            return verified

        @task(task_id="reject_tampered_callback")
        def reject_tampered_callback() -> None:
            headers, body = inbox.wait(1)[0]
            forged = {**headers, "X-Webhook-Signature": "Zm9yZ2VkLXNpZ25hdHVyZQ=="}
            verify_runway_callback(forged, body)  # raises WebhookVerificationError: the task fails

        [generate, deferred] >> verify_callbacks()
        generate >> reject_tampered_callback()
    return dag


@dataclass
class SecretsRun:
    """What the secrets DAG run left behind, for the leak scan and the assertions."""

    states: dict[str, str]
    failures: list[str]
    events: list[dict[str, Any]]
    stored_texts: list[str]
    airflow_home_bytes: dict[str, bytes]
    result: ScenarioResult


def _stored_run(dag_id: str, run_id: str) -> tuple[dict[str, str], list[str]]:
    """Each task's state, and everything the metadata DB holds for the run: XComs, rendered fields, triggers."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    XComModel = xcom_model()
    texts: list[str] = []
    states: dict[str, str] = {}
    with create_session() as session:
        for xcom in session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)):
            texts.append(f"xcom {xcom.task_id} {xcom.key} {xcom.value!r}")
        rendered = select(RenderedTaskInstanceFields).where(
            RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
        )
        for row in session.scalars(rendered):
            texts.append(f"rendered {row.task_id} {row.rendered_fields!r}")
        for ti in session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ):
            states[ti.task_id] = str(ti.state)
            texts.append(f"ti {ti.task_id} {ti.state} {ti.next_kwargs!r} {ti.next_method!r} {ti.rendered_map_index!r}")
        for trigger in session.scalars(select(Trigger)):
            texts.append(f"trigger {trigger.classpath} {trigger.kwargs!r}")
    return states, texts


def _airflow_home_files() -> dict[str, bytes]:
    """The raw bytes of every file under AIRFLOW_HOME: the SQLite DB and its WAL, logs, config."""
    home = Path(os.environ["AIRFLOW_HOME"])
    files: dict[str, bytes] = {}
    for path in home.rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                files[str(path.relative_to(home))] = path.read_bytes()
    return files


@contextlib.contextmanager
def recorded_trigger_events(events: list[dict[str, Any]]) -> Iterator[None]:
    """Record the payload of every event any :class:`RunwayTaskTrigger` yields (dag.test runs them in line)."""
    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    original = RunwayTaskTrigger.run

    async def run(self: Any) -> Any:
        async for event in original(self):
            events.append(dict(event.payload))
            yield event

    RunwayTaskTrigger.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        RunwayTaskTrigger.run = original  # type: ignore[method-assign]


def run_secrets_dag(sim: Any, watch: LeakWatch) -> SecretsRun:
    """Run the secrets DAG once with ``dag.test()`` against ``sim`` (configured with the webhook key)."""
    good = {"conn_type": "runway", "host": sim.url, "password": API_KEY, "extra": {"webhook_hmac_key": WEBHOOK_KEY}}
    connections = {
        "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(good),
        "AIRFLOW_CONN_RUNWAY_BADKEY": json.dumps({**good, "password": WRONG_API_KEY}),
    }
    sim.configure(api_keys=[API_KEY], webhook_hmac_key=WEBHOOK_KEY)
    inbox = CallbackInbox()
    failures: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        with environment(**connections):
            dag = build_secrets_dag(inbox, Path(tempfile.mkdtemp(prefix="runway-secrets-")), failures)
            serialize_dag(dag)
            started = time.monotonic()
            with recorded_trigger_events(events):
                dag_run = dag.test()
            seconds = time.monotonic() - started
    finally:
        inbox.close()
        sim.configure(api_keys=[], webhook_hmac_key=None)
    states, stored = _stored_run(dag_run.dag_id, dag_run.run_id)
    watch.keep(*failures, *stored, *events)
    result = ScenarioResult(SECRETS_ROW, tasks=len(SECRETS_EXPECTED), seconds=seconds)
    for task_id, wanted in SECRETS_EXPECTED.items():
        got = states.get(task_id)
        if got != wanted:
            result.problems.append(f"{task_id} ended {got}, expected {wanted}")
        elif wanted == "success":
            result.succeeded += 1
        else:
            result.failed_as_expected += 1
    counters = sim.counters()
    result.creations = int(counters["tasks_created"].get(sim.account_label(API_KEY), 0))
    result.expected_creations = 5  # generate x2, extend, aleph, timeout; the wrong key creates nothing
    result.requests = int(counters["requests_total"])
    return SecretsRun(states, failures, events, stored, _airflow_home_files(), result)


def secrets_row(h: Harness) -> ScenarioResult:
    """Run the secrets DAG and scan every surface; needs an initialised Airflow metadata DB."""
    watch = LeakWatch()
    h.fresh()
    with captured_fds() as output, watch.installed():
        run = run_secrets_dag(h.sim, watch)
    everything = (*output, *watch.texts, *run.failures, *run.events, *run.stored_texts)
    run.result.keys_leaked = count_leaks(*everything, secrets=(*SECRETS, WRONG_API_KEY))
    run.result.keys_leaked += count_leaks_in_bytes(run.airflow_home_bytes)
    return run.result
