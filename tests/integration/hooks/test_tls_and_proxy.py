"""The hook and the trigger through a loopback HTTPS_PROXY to the simulator served over TLS with a test CA."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_runway.core.errors import RunwayTransportError
from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.simulator import SimulatorConfig
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from tests.integration.hooks.conftest import use_simulator
from tests.integration.hooks.tls_proxy import ConnectProxy, TlsSimulator, make_test_pki

pytestmark = pytest.mark.integration

FAST = {"wait_seconds": 0.1, "queueing_seconds": 0.1, "generating_seconds": 0.2, "concurrency_limit": 0}


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_test_pki(tmp_path)


@pytest.fixture
def tls_sim(pki: tuple[Path, Path, Path]) -> Iterator[TlsSimulator]:
    with TlsSimulator(pki[1], pki[2], SimulatorConfig(**FAST)) as simulator:
        yield simulator


@pytest.fixture
def only_https_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    """HTTPS_PROXY at a loopback CONNECT proxy, and no other proxy setting in the environment."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        yield proxy


def test_a_deferred_wait_reads_status_through_the_environment_proxy(
    tls_sim: TlsSimulator, pki: tuple[Path, Path, Path], only_https_proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_simulator(monkeypatch, tls_sim.url, verify=str(pki[0]))
    task_id = RunwayHook(retry_limit=0).create_generate_task(GenerateRequest(prompt="a lighthouse at dusk"))
    tunnels_before = only_https_proxy.connects
    trigger = RunwayTaskTrigger(task_id, poll_interval=0.1, end_time=time.time() + 30, retry_limit=0)

    async def first_event() -> dict:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded nothing")

    event = asyncio.run(first_event())
    assert event["status"] == "success", event
    assert event["task"]["video_url"]
    assert only_https_proxy.connects > tunnels_before
    host_port = tls_sim.url.split("://", 1)[1]
    assert set(only_https_proxy.targets) == {host_port}


def test_verify_names_the_ca_bundle_on_both_paths(
    tls_sim: TlsSimulator, pki: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_simulator(monkeypatch, tls_sim.url, verify=str(pki[0]))
    hook = RunwayHook(retry_limit=0)
    assert hook.get_credits() > 0
    task_id = hook.create_generate_task(GenerateRequest(prompt="a lighthouse at dusk"))
    assert asyncio.run(RunwayHook(retry_limit=0).aget_task(task_id)).task_id == task_id


def test_without_verify_the_private_ca_is_refused_clearly(
    tls_sim: TlsSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    use_simulator(monkeypatch, tls_sim.url)
    with pytest.raises(RunwayTransportError, match=r"certificate verification failed.*'verify'") as sync_error:
        RunwayHook(retry_limit=0).get_credits()
    assert not sync_error.value.request_sent
    with pytest.raises(RunwayTransportError, match=r"certificate verification failed.*'verify'") as async_error:
        asyncio.run(RunwayHook(retry_limit=0).aget_task("t-unknown"))
    assert not async_error.value.request_sent
