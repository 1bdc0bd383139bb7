"""A whole DAG runs with a distinctive API key and webhook HMAC key; neither appears anywhere.

Scanned: the task and triggerer output (``dag.test()`` runs both in this process and prints their
logs), every log record, exception messages of the failed tasks, and the metadata DB (XComs,
rendered template fields, task instances with their trigger events, triggers), both through the
ORM and as raw bytes of every file under AIRFLOW_HOME. Controls prove each surface is live: the
canary prompt is found where rendered fields are kept, task log lines are captured, the webhook
key verified real callbacks, and the wrong key was refused by the simulator.
"""

from __future__ import annotations

import pytest

from airflow_provider_runway.simulator import SimulatorConfig, SimulatorThread
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS
from tests.harness.faults import SIM_FIELDS
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
from tests.harness.secrets_dag import CANARY_PROMPT, SecretsRun, run_secrets_dag

ALL_SECRETS = (*SECRETS, WRONG_API_KEY)
#: What dag.test() prints for each deferral: 2.11 raises the deferral straight to its in-line trigger runner.
DEFERRAL_LINE = "Pausing task as DEFERRED" if AIRFLOW_V_3_0_PLUS else "[DAG TEST] running trigger in line"


@pytest.fixture(scope="module")
def secrets_run(request: pytest.FixtureRequest, airflow_db: str) -> tuple[SecretsRun, str, LeakWatch]:
    """Run the DAG once per module; its stdout and stderr are captured at the file-descriptor level."""
    # capfd is per test; with pytest's own capture paused, every write reaches fds 1 and 2.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    watch = LeakWatch()
    with (
        capture.global_and_fixture_disabled(),
        SimulatorThread(SimulatorConfig(**SIM_FIELDS)) as sim,
        captured_fds() as output,
        watch.installed(),
    ):
        run = run_secrets_dag(sim, watch)
    return run, output[0], watch


@pytest.mark.integration
def test_every_task_ended_as_designed(secrets_run: tuple[SecretsRun, str, LeakWatch]) -> None:
    run, _, _ = secrets_run
    assert run.result.problems == []
    assert run.result.clean, run.result.explain()


@pytest.mark.integration
def test_the_scanned_surfaces_are_live(secrets_run: tuple[SecretsRun, str, LeakWatch]) -> None:
    run, output, watch = secrets_run
    assert any(text.startswith("rendered") and CANARY_PROMPT in text for text in run.stored_texts)
    assert any(text.startswith("xcom generate_sync") for text in run.stored_texts)
    assert sum(blob.count(CANARY_PROMPT.encode()) for blob in run.airflow_home_bytes.values()) > 0
    assert "Created Runway" in output  # the task log reached the captured output
    deferrals = output if AIRFLOW_V_3_0_PLUS else "\n".join(watch.texts)  # 2.11 logs it outside the task log
    assert deferrals.count(DEFERRAL_LINE) >= 3  # generate, extend and timeout ran their triggers
    assert "Runway refused to create the task" in output + "".join(watch.texts)
    statuses = sorted(event["status"] for event in run.events)
    assert statuses.count("success") >= 2 and "timeout" in statuses  # trigger events were recorded
    failed = " | ".join(run.failures)
    assert "reject_tampered_callback: WebhookVerificationError" in failed
    assert "wrong_api_key:" in failed and "401" in failed
    assert "deferred_timeout:" in failed


@pytest.mark.integration
@pytest.mark.parametrize("secret", ALL_SECRETS, ids=["api-key", "webhook-key", "wrong-api-key"])
def test_no_secret_in_logs_exceptions_or_trigger_events(
    secrets_run: tuple[SecretsRun, str, LeakWatch], secret: str
) -> None:
    run, output, watch = secrets_run
    assert count_leaks(output, secrets=(secret,)) == 0
    assert count_leaks(*watch.texts, secrets=(secret,)) == 0
    assert count_leaks(*run.failures, secrets=(secret,)) == 0
    assert count_leaks(*run.events, secrets=(secret,)) == 0


@pytest.mark.integration
@pytest.mark.parametrize("secret", ALL_SECRETS, ids=["api-key", "webhook-key", "wrong-api-key"])
def test_no_secret_in_xcom_rendered_fields_events_or_any_file(
    secrets_run: tuple[SecretsRun, str, LeakWatch], secret: str
) -> None:
    run, _, _ = secrets_run
    assert count_leaks(*run.stored_texts, secrets=(secret,)) == 0
    leaking = [name for name, blob in run.airflow_home_bytes.items() if secret.encode() in blob]
    assert leaking == []
    assert count_leaks_in_bytes(run.airflow_home_bytes, (secret,)) == 0


def test_the_keys_are_distinctive() -> None:
    assert API_KEY != WEBHOOK_KEY and all(len(secret) >= 16 for secret in ALL_SECRETS)
