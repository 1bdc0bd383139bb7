"""RunwayHook against the bundled simulator over real loopback HTTP, in both error styles. No mocks."""

from __future__ import annotations

import asyncio
import socket

import pytest

from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayCreateUncertainError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayTransportError,
)
from airflow_provider_runway.core.models import AlephRequest, ExtendRequest, GenerateRequest
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.integration.hooks.conftest import API_KEY, use_simulator, wait_terminal

pytestmark = pytest.mark.integration

PROMPT = "A paper boat drifting down a rainy street, cinematic"


def created(sim) -> int:
    return sum(sim.counters()["tasks_created"].values())


def requests_to(sim, endpoint: str) -> int:
    return int(sim.counters()["requests"].get(endpoint, 0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestLifecycle:
    def test_generate_extend_download_credits(self, sim, hook):
        assert hook.test_connection()[0]
        credits_before = hook.get_credits()
        task_id = hook.create_generate_task(GenerateRequest(prompt=PROMPT, duration=5, quality="720p"))
        task = wait_terminal(hook, task_id)
        assert task.status is TaskStatus.SUCCEEDED and task.video_url and task.video_url.startswith("http")
        assert hook.get_download_url(task.video_url).startswith("http")
        extension = wait_terminal(hook, hook.create_task(ExtendRequest(source_task_id=task_id, prompt="and then")))
        assert extension.status is TaskStatus.SUCCEEDED and extension.parent_task_id == task_id
        assert hook.get_credits() < credits_before
        assert created(sim) == 2

    def test_aleph(self, sim, hook):
        task_id = hook.create_task(AlephRequest(prompt="Make it snow", video_url="https://example.com/in.mp4"))
        task = wait_terminal(hook, task_id, family="aleph")
        assert (task.family, task.status) == (TaskFamily.ALEPH, TaskStatus.SUCCEEDED) and task.video_url

    def test_remote_failure_is_reported_in_the_task(self, sim, hook):
        task_id = hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        sim.fail_task(task_id, code=400, message="Inappropriate content detected")
        task = wait_terminal(hook, task_id)
        assert task.status is TaskStatus.FAILED and task.fail_message == "Inappropriate content detected"

    def test_uri_form_connection(self, sim, monkeypatch):
        host_port = sim.url.split("://", 1)[1]
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", f"runway://:{API_KEY}@{host_port}/?use_https=false")
        hook = RunwayHook()
        assert hook.base_url == sim.url
        assert hook.get_credits() > 0


class TestErrors:
    def test_wrong_key(self, runway_sim_factory, monkeypatch, request):
        for style in ("body", "http"):
            sim = runway_sim_factory(error_style=style, api_keys=("the-only-good-key-123",))
            use_simulator(monkeypatch, sim.url, api_key="a-wrong-key-0123456789")
            with pytest.raises(RunwayAuthError):
                RunwayHook().get_credits()
            ok, message = RunwayHook().test_connection()
            assert not ok and "a-wrong-key-0123456789" not in message

    def test_no_credits_creates_nothing(self, sim, hook):
        sim.set_credits(API_KEY, 0)
        with pytest.raises(RunwayInsufficientCreditsError):
            hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        assert created(sim) == 0 and requests_to(sim, "generate") == 1

    def test_unknown_task(self, sim, hook):
        with pytest.raises(RunwayNotFoundError):
            hook.get_task("no-such-task")
        assert requests_to(sim, "record-detail") == 1

    def test_server_side_validation(self, sim, hook):
        sim.configure(max_prompt_length=10)
        with pytest.raises(RunwayRequestRejectedError):
            hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        assert created(sim) == 0


class TestRetries:
    @pytest.mark.parametrize("kind", ["http429", "http455"])
    def test_create_retried_where_nothing_was_created(self, sim, hook, kind):
        sim.inject_fault(endpoint="generate", kind=kind, count=2, retry_after=0.1)
        assert hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        assert requests_to(sim, "generate") == 3 and created(sim) == 1

    @pytest.mark.parametrize("kind", ["http500", "html_error", "malformed_json", "drop_after", "drop"])
    def test_create_not_retried_when_outcome_unknown(self, sim, hook, kind):
        sim.inject_fault(endpoint="generate", kind=kind, count=1)
        with pytest.raises(RunwayCreateUncertainError, match="may have been created"):
            hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        assert requests_to(sim, "generate") == 1
        if kind == "drop_after":
            assert created(sim) == 1  # the reason a blind retry would pay twice

    def test_create_read_timeout_is_uncertain(self, sim):
        sim.inject_fault(endpoint="generate", kind="slow", delay=2.0)
        with pytest.raises(RunwayCreateUncertainError, match="ReadTimeout"):
            RunwayHook(timeout=0.3, retry_limit=3, retry_delay=0.01).create_generate_task(
                GenerateRequest(prompt=PROMPT)
            )
        assert requests_to(sim, "generate") == 1

    def test_create_retried_on_connection_refused(self, monkeypatch):
        use_simulator(monkeypatch, f"http://127.0.0.1:{free_port()}")
        hook = RunwayHook(retry_limit=2, retry_delay=0.01)
        attempts: list[float] = []
        hook._sleep = attempts.append
        with pytest.raises(RunwayTransportError) as caught:
            hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        assert caught.value.request_sent is False
        assert len(attempts) == 2  # retried twice: nothing can have been created

    @pytest.mark.parametrize("kind", ["http500", "http455", "html_error", "malformed_json", "drop", "http429"])
    def test_status_reads_retry(self, sim, hook, kind):
        task_id = hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        sim.inject_fault(endpoint="record-detail", kind=kind, count=2, retry_after=0.05)
        assert hook.get_task(task_id).task_id == task_id
        assert requests_to(sim, "record-detail") == 3

    def test_persistent_rate_limit_surfaces(self, sim, hook):
        sim.inject_fault(endpoint="credit", kind="http429", count=10, retry_after=0.05)
        with pytest.raises(RunwayRateLimitedError):
            hook.get_credits()
        assert requests_to(sim, "credit") == 4


class TestAsync:
    def test_one_session_polls_to_completion_through_faults(self, sim, hook):
        task_id = hook.create_generate_task(GenerateRequest(prompt=PROMPT))
        sim.inject_fault(endpoint="record-detail", kind="http500", count=1)
        sim.inject_fault(endpoint="record-detail", kind="drop", count=1)

        async def poll() -> tuple:
            fresh = RunwayHook(retry_limit=3, retry_delay=0.01)
            async with fresh:
                session = fresh._asession
                while True:
                    task = await fresh.aget_task(task_id)
                    if task.is_terminal:
                        return task, session is fresh._asession
                    await asyncio.sleep(0.05)

        task, same_session = asyncio.run(poll())
        assert task.status is TaskStatus.SUCCEEDED and same_session

    def test_not_found(self, sim):
        with pytest.raises(RunwayNotFoundError):
            asyncio.run(RunwayHook(retry_limit=0).aget_task("no-such-task"))


def test_key_never_in_output_of_failing_calls(runway_sim_factory, monkeypatch, capfd, caplog):
    sim = runway_sim_factory(error_style="http", api_keys=("another-key-entirely-123",))
    use_simulator(monkeypatch, sim.url)
    hook = RunwayHook(retry_limit=1, retry_delay=0.01)
    failures = []
    for call in (hook.get_credits, lambda: hook.get_task("t-1"), lambda: hook.create_task(GenerateRequest(prompt="p"))):
        with pytest.raises(RunwayAuthError) as caught:
            call()
        failures.append(f"{caught.value!s} {caught.value!r}")
    sim.configure(api_keys=[API_KEY])
    sim.inject_fault(endpoint="generate", kind="drop_after", count=1)
    with pytest.raises(RunwayCreateUncertainError) as uncertain:
        hook.create_task(GenerateRequest(prompt="p"))
    failures.append(f"{uncertain.value!s} {uncertain.value.__cause__!r}")
    out, err = capfd.readouterr()
    assert "Runway API" in out + err
    for text in (*failures, out, err, caplog.text):
        assert API_KEY not in text
