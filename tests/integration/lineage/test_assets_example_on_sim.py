"""The assets example pair imports, and its batch runs unchanged against the simulator (``dag.test()``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SIM_API_KEY
from tests.integration.lineage.test_usage_and_assets_on_sim import asset_events

pytestmark = pytest.mark.integration

DAGS_FOLDER = Path(__file__).resolve().parents[3] / "dags"


def load_dag(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"runway_examples_{name}", DAGS_FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_the_pair_names_one_asset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", f"file://{tmp_path}/")
    batch, publish = load_dag("example_runway_assets_batch"), load_dag("example_runway_publish")
    [outlet] = batch.get_task("generate").outlets
    assert outlet.uri == f"file://{tmp_path}/published"
    timetable = publish.timetable
    condition = getattr(timetable, "asset_condition", None) or timetable.dataset_condition  # 3.x, 2.11
    assert [asset.uri for asset in getattr(condition, "objects", [condition])] == [outlet.uri]


def test_the_batch_stores_announces_and_sums_what_it_cost(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", f"file://{tmp_path}/")
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    dr = run_dag(load_dag("example_runway_assets_batch"))
    states = ti_states(dr)
    assert {key: state for key, (state, _) in states.items()} == {
        "load_prompts": "success",
        "generate[0]": "success",
        "generate[1]": "success",
        "summary": "success",
    }
    events = asset_events(dr)
    assert len(events) == 2
    assert {event["uri"] for event in events} == {f"file://{tmp_path}/published"}
    for event in events:
        stored = Path(event["extra"]["video_path"].removeprefix("file://"))
        assert stored.stat().st_size == event["extra"]["video_size"] > 0
        assert stored.stem == event["extra"]["runway_task_id"]
    assert xcom(dr, "summary") == {
        "generations": 2,
        "charged": 2,
        "credits": runway_conn.account(SIM_API_KEY)["credits_spent"],
        "unknown": [],
    }
    assert runway_conn.account(SIM_API_KEY)["credits_spent"] == 120


def test_a_batch_of_one_sums_its_one_usage(
    runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Airflow 3 hands a mapped task's only XCom to ``xcom_pull`` bare, not in a list: the summary still counts it."""
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", f"file://{tmp_path}/")
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    dr = run_dag(load_dag("example_runway_assets_batch"), run_conf={"prompts": ["A single lighthouse at dusk"]})
    assert ti_states(dr)["summary"][0] == "success"
    assert xcom(dr, "summary") == {"generations": 1, "charged": 1, "credits": 60, "unknown": []}
