"""The provider's price table, the usage record, and the simulator's own prices agreeing with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_runway.core.errors import RunwayParameterError
from airflow_provider_runway.core.pricing import KIE_PRICES, credits_for, price_table, usage_of
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.simulator import pricing as sim_pricing
from airflow_provider_runway.simulator.engine import CONCURRENCY_MESSAGE


def task(
    family: TaskFamily = TaskFamily.RUNWAY, status: TaskStatus = TaskStatus.SUCCEEDED, **kwargs: Any
) -> RunwayTask:
    return RunwayTask(task_id="t-1", family=family, status=status, **kwargs)


@pytest.mark.parametrize("quality", ["720p", "1080p"])
@pytest.mark.parametrize("duration", [5, 8, 10])
def test_the_simulator_charges_what_the_provider_prices(duration: int, quality: str) -> None:
    """Every price the provider knows is what the simulator deducts, from its own table."""
    credits, reason = credits_for(TaskFamily.RUNWAY, duration, quality, KIE_PRICES)
    assert reason is None
    assert credits == sim_pricing.credit_cost("generate", duration, quality)


def test_the_tables_have_the_same_runway_qualities() -> None:
    provider = {key.split(":", 1)[1] for key in KIE_PRICES if key.startswith("runway:")}
    assert provider == set(sim_pricing.RUNWAY_CREDITS_PER_SECOND)


def test_aleph_is_unknown_with_a_reason_rather_than_guessed() -> None:
    usage = usage_of(task(TaskFamily.ALEPH), duration=None, quality=None)
    assert usage.credits is None and usage.charged
    assert "Aleph" in (usage.reason or "")
    assert usage.duration == 5  # KIE processes the first 5 s


def test_an_override_prices_aleph_like_the_simulator() -> None:
    prices = price_table(json.dumps({"aleph": sim_pricing.ALEPH_CREDITS}))
    usage = usage_of(task(TaskFamily.ALEPH), duration=None, quality=None, prices=prices)
    assert usage.credits == sim_pricing.credit_cost(sim_pricing.ALEPH, 5, "720p") and usage.reason is None


def test_usage_of_a_success_and_of_a_remote_failure() -> None:
    ok = usage_of(task(), duration=10, quality="720p")
    assert ok.to_dict() == {
        "task_id": "t-1",
        "family": "runway",
        "duration": 10,
        "quality": "720p",
        "credits": 120,
        "charged": True,
        "reason": None,
    }
    failed = usage_of(task(status=TaskStatus.FAILED, fail_message="content rejected"), duration="5", quality="1080p")
    assert (failed.credits, failed.charged, failed.duration) == (70, True, 5)  # KIE does not refund a failure


def test_a_concurrency_failure_is_not_charged() -> None:
    failed = task(status=TaskStatus.FAILED, fail_message=CONCURRENCY_MESSAGE, fail_code="400")
    usage = usage_of(failed, duration=5, quality="720p")
    assert (usage.credits, usage.charged) == (0, False)


def test_an_extension_without_a_known_length_has_unknown_credits() -> None:
    usage = usage_of(task(), duration=None, quality="720p")
    assert usage.credits is None and "duration" in (usage.reason or "")


def test_overrides_apply_and_keep_the_other_entries() -> None:
    table = price_table({"runway:720p": 12.5})
    assert table["runway:720p"] == 12.5 and table["runway:1080p"] == KIE_PRICES["runway:1080p"]
    assert usage_of(task(), duration=8, quality="720p", prices=table).credits == 100


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"runway:4k": 30}, "'runway:4k'"),
        ({"runway:720p": -1}, "price_table['runway:720p']"),
        ({"runway:720p": "twelve"}, "price_table['runway:720p']"),
        ({"aleph": True}, "price_table['aleph']"),
        ("[1, 2]", "price_table"),
        ("{not json", "price_table"),
    ],
)
def test_a_bad_price_table_names_the_parameter_and_the_allowed_values(overrides: Any, named: str) -> None:
    with pytest.raises(RunwayParameterError) as err:
        price_table(overrides)
    assert named in str(err.value)
    assert "price_table" in str(err.value)
