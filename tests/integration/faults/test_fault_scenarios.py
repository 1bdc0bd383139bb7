"""Every fault scenario, over real HTTP against the simulator, must come out clean.

Clean means: every task ended in the right terminal state (success, or the documented failure),
the simulator counted exactly the expected creations (never two for one task), each retry path
stayed within its counted bound, and neither the API key nor the webhook key appeared in any log
record, captured output, exception, trigger event or result.
"""

from __future__ import annotations

import re

import pytest

from tests.harness.bad_input import bad_input_row
from tests.harness.faults import SCENARIOS, TASKS, Harness, run_scenario
from tests.harness.leaks import count_leaks

IDS = [re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") for name in SCENARIOS]


@pytest.mark.integration
@pytest.mark.parametrize("name", list(SCENARIOS), ids=IDS)
def test_scenario_is_clean(harness: Harness, capfd: pytest.CaptureFixture[str], name: str) -> None:
    result = run_scenario(harness, name)
    out, err = capfd.readouterr()
    result.keys_leaked += count_leaks(out, err)
    assert result.tasks >= 20
    assert result.clean, result.explain()


def test_every_issue_scenario_is_covered() -> None:
    wanted = (
        "455",
        "500",
        "429",
        "dropped",
        "timeouts",
        "malformed",
        "unknown fields",
        "404",
        "expired",
        "restart",
        "two copies",
        "killed",
        "give up",
    )
    names = " | ".join(SCENARIOS)
    assert [w for w in wanted if w not in names] == []
    assert TASKS >= 20


@pytest.mark.integration
def test_bad_input_row_is_clean(harness: Harness, capfd: pytest.CaptureFixture[str]) -> None:
    """The script's bad-input row: every case fails naming its parameter, nothing reaches the simulator."""
    result = bad_input_row(harness)
    out, err = capfd.readouterr()
    assert count_leaks(out, err) == 0
    assert result.tasks >= 40
    assert result.clean, result.explain()
