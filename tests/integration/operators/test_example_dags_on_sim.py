"""Each example DAG of the operators and the sensor runs unchanged against the simulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DAGS_FOLDER = Path(__file__).resolve().parents[3] / "dags"
EXAMPLES = {
    "example_runway_text_to_video": ["generate", "announce"],
    "example_runway_image_to_video": ["make_still", "animate_image"],
    "example_runway_aleph": ["make_source_clip", "turn_to_night", "compare"],
    "example_runway_extend_chain": ["opening", "middle", "ending", "storyboard"],
    "example_runway_sensor": ["submit", "wait_deferred", "wait_rescheduled"],
}


def load_dag(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"runway_examples_{name}", DAGS_FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_dag_succeeds(
    name: str, runway_conn: Any, run_dag: Any, ti_states: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    dag = load_dag(name)
    assert dag.dag_id == name
    assert (DAGS_FOLDER / f"{name}.py").read_text().startswith('"""')  # documented at the top
    dr = run_dag(dag)
    states = ti_states(dr)
    assert {task_id: state for task_id, (state, _) in states.items()} == dict.fromkeys(EXAMPLES[name], "success")
    assert runway_conn.counters()["tasks_total"] >= 1
