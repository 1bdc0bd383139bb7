"""The simulator's settings for KIE's current pages (issue 23 items 7-10), driven by a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_runway.core.errors import usage_cap_period
from airflow_provider_runway.simulator.cli import build_parser, config_from_args
from airflow_provider_runway.simulator.config import (
    CONCURRENCY_MESSAGE,
    FREE_ACCOUNT_CAPACITY_MESSAGE,
    SimulatorConfig,
)
from airflow_provider_runway.simulator.engine import ACCESS_REFUSED_MESSAGE, SimEngine, SimError
from airflow_provider_runway.simulator.faults import FaultRule


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(**fields: Any) -> tuple[SimEngine, Clock]:
    clock = Clock()
    config = SimulatorConfig(**{"concurrency_limit": 0, "rate_limit_creates": 0, **fields})
    return SimEngine(config, clock), clock


@pytest.mark.parametrize(("period", "span"), [("hourly", 3600.0), ("daily", 86400.0)])
def test_a_usage_cap_refuses_creates_until_its_period_has_passed(period: str, span: float) -> None:
    engine, clock = make(usage_cap_creates=2, usage_cap_period=period)
    account = engine.account("k")
    engine.admit_create(account)
    engine.admit_create(account)
    with pytest.raises(SimError) as refused:
        engine.admit_create(account)
    assert (refused.value.code, refused.value.http) == (429, True)
    assert "Retry-After" not in refused.value.headers  # a cap is not a pause of seconds
    assert usage_cap_period(refused.value.message) == period  # the core reads it as that cap
    engine.admit_create(engine.account("other"))  # per key
    clock.now += span + 1
    engine.admit_create(account)
    assert engine.counters()["usage_capped"] == {account.label: 1, engine.account("other").label: 0}


def test_a_total_cap_never_resets_and_zero_means_no_cap() -> None:
    engine, clock = make(usage_cap_creates=1, usage_cap_period="total")
    account = engine.account("k")
    engine.admit_create(account)
    clock.now += 10 * 86400
    with pytest.raises(SimError, match="total usage limit"):
        engine.admit_create(account)
    engine.config = engine.config.updated({"usage_cap_creates": 0})
    engine.admit_create(account)


def test_the_cap_message_is_not_read_as_the_rate_limit_and_the_rate_limit_not_as_a_cap() -> None:
    engine, _ = make(rate_limit_creates=1)
    account = engine.account("k")
    engine.admit_create(account)
    with pytest.raises(SimError) as limited:
        engine.admit_create(account)
    assert limited.value.code == 429 and usage_cap_period(limited.value.message) is None


def test_allowed_ips_refuse_other_addresses_with_kies_401() -> None:
    engine, _ = make(allowed_ips="10.0.0.7, 10.0.0.8")
    engine.refuse_address("10.0.0.8")
    with pytest.raises(SimError) as refused:
        engine.refuse_address("127.0.0.1")
    assert (refused.value.code, refused.value.message) == (401, ACCESS_REFUSED_MESSAGE)
    assert engine.counters()["ip_refused"] == 1
    make()[0].refuse_address("127.0.0.1")  # empty: every address


@pytest.mark.parametrize("mode", ["fail_task", "refuse"])
def test_the_concurrency_message_is_configurable(mode: str) -> None:
    engine, _ = make(concurrency_limit=1, concurrency_mode=mode, concurrency_message=FREE_ACCOUNT_CAPACITY_MESSAGE)
    args: dict[str, Any] = {
        "kind": "generate",
        "params": {},
        "duration": 5,
        "quality": "720p",
        "aspect_ratio": "16:9",
        "base_url": "http://sim",
        "callback_url": None,
    }
    engine.create(engine.account("k"), **args)
    if mode == "refuse":
        with pytest.raises(SimError) as refused:
            engine.create(engine.account("k"), **args)
        assert refused.value.message == FREE_ACCOUNT_CAPACITY_MESSAGE
    else:
        over = engine.create(engine.account("k"), **args)
        assert over.failure == (400, FREE_ACCOUNT_CAPACITY_MESSAGE) and over.cost == 0
    assert SimulatorConfig().concurrency_message == CONCURRENCY_MESSAGE


@pytest.mark.parametrize(
    "fields",
    [
        {"usage_cap_creates": -1},
        {"usage_cap_period": "weekly"},
        {"concurrency_message": " "},
        {"record_style": "other"},
    ],
)
def test_bad_new_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**fields)


def test_new_settings_have_command_line_flags() -> None:
    args = build_parser().parse_args(
        [
            "--usage-cap-creates",
            "3",
            "--usage-cap-period",
            "hourly",
            "--allowed-ips",
            "10.0.0.7",
            "--record-style",
            "ids",
            "--concurrency-message",
            FREE_ACCOUNT_CAPACITY_MESSAGE,
        ]
    )
    config = config_from_args(args)
    assert (config.usage_cap_creates, config.usage_cap_period, config.record_style) == (3, "hourly", "ids")
    assert config.allowed_ip_set == frozenset({"10.0.0.7"})
    assert config.concurrency_message == FREE_ACCOUNT_CAPACITY_MESSAGE


@pytest.mark.parametrize("kind", ["cap_hourly", "cap_daily", "cap_total", "ip_refused"])
def test_the_new_fault_kinds_are_accepted(kind: str) -> None:
    assert FaultRule(endpoint="generate", kind=kind, count=1).to_dict()["kind"] == kind
