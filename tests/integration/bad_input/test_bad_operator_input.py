"""Invalid operator configurations fail early, name the parameter, and never reach the API.

Static mistakes fail when the DAG file is parsed (the operator's constructor); templated values
that render to something invalid fail at execute time with ``AirflowFailException`` (no Airflow
retry can fix them) before any HTTP request. The simulator counts every request it receives, so
"nothing was created" is checked on the wire, not assumed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowFailException

from airflow_provider_runway.core import RunwayParameterError
from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.simulator import SimulatorThread
from tests.harness.bad_input import BAD_STATIC_CASES as STATIC_CASES
from tests.harness.bad_input import BAD_TEMPLATED_CASES as TEMPLATED_CASES
from tests.harness.bad_input import MAX_PARAMETER_MESSAGE as MAX_MESSAGE_LENGTH
from tests.harness.bad_input import bad_input_operator
from tests.harness.operators import use_file_variables


class _StateStore:
    """Stand-in for ``task_state_store``: records whether anything was stored."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value


def _context(params: dict[str, Any]) -> dict[str, Any]:
    ti = mock.MagicMock(name="ti")
    ti.stats_tags = {}
    return {"params": params, "ti": ti, "task_state_store": _StateStore()}


def test_the_suite_covers_at_least_forty_configurations() -> None:
    assert len(STATIC_CASES) + len(TEMPLATED_CASES) >= 40
    ids = [case[0] for case in STATIC_CASES] + [case[0] for case in TEMPLATED_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operator", "kwargs", "param"), [c[1:] for c in STATIC_CASES], ids=[c[0] for c in STATIC_CASES]
)
def test_static_mistake_fails_at_parse_time_naming_the_parameter(
    sim: SimulatorThread, operator: str, kwargs: dict[str, Any], param: str
) -> None:
    with (
        DAG("bad_input_static", schedule=None, start_date=datetime.datetime(2024, 1, 1)),
        pytest.raises(RunwayParameterError) as raised,
    ):
        bad_input_operator(operator)(task_id="bad", **kwargs)
    assert raised.value.field == param
    message = str(raised.value)
    assert message.startswith(f"Invalid {param}=")
    assert len(message) <= MAX_MESSAGE_LENGTH
    counters = sim.counters()
    assert counters["requests_total"] == 0
    assert counters["tasks_total"] == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operator", "kwargs", "params", "param", "extra"),
    [c[1:] for c in TEMPLATED_CASES],
    ids=[c[0] for c in TEMPLATED_CASES],
)
def test_rendered_mistake_fails_at_execute_without_any_request(
    sim: SimulatorThread,
    connection_extra: Callable[..., None],
    operator: str,
    kwargs: dict[str, Any],
    params: dict[str, Any],
    param: str,
    extra: dict[str, Any],
) -> None:
    connection_extra(**extra)
    with DAG("bad_input_rendered", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
        op = bad_input_operator(operator)(task_id="bad_rendered", poll_interval=0.05, **kwargs)  # valid when parsed
    context = _context(params)
    op.render_template_fields(context)
    with pytest.raises(AirflowFailException) as raised:
        op.execute(context)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"Invalid {param}=" in message
    assert "no Runway task was created" in message
    assert len(message) <= MAX_MESSAGE_LENGTH
    assert context["task_state_store"].data == {}
    context["ti"].xcom_push.assert_not_called()
    counters = sim.counters()
    assert counters["requests_total"] == 0
    assert counters["tasks_total"] == 0


@pytest.mark.integration
def test_a_valid_configuration_does_reach_the_simulator(sim: SimulatorThread) -> None:
    """The control case: the same harness with a valid value creates exactly one task."""
    with DAG("bad_input_control", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
        op = RunwayGenerateOperator(task_id="good", prompt="{{ params.v }}", poll_interval=0.05, timeout=30)
    context = _context({"v": "a cat on a skateboard"})
    op.render_template_fields(context)
    restore = use_file_variables()  # below 3.3 the resume record needs a Variable store outside Airflow
    try:
        result = op.execute(context)  # type: ignore[arg-type]
    finally:
        restore()
    assert result["state"] == "succeeded"
    counters = sim.counters()
    assert counters["requests"].get("generate") == 1
    assert counters["tasks_total"] == 1
