"""The example DAGs import on this Airflow, and they run unchanged against the simulator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.airflow_compat import dag_bag
from tests.integration.conftest import SIM_API_KEY

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


def test_aleph_example_fails_once_where_kie_no_longer_serves_aleph(
    runway_conn: Any, run_dag: Any, ti_states: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KIE's newest docs list Aleph as discontinued: with it off, the example's Aleph task fails in one try
    and no Aleph task is created (the source clip, a Runway generation, is the only creation)."""
    runway_conn.configure(aleph_mode="505")
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    dr = run_dag(load_dag("example_runway_aleph"))
    states = ti_states(dr)
    assert states["make_source_clip"] == ("success", 1)
    assert states["turn_to_night"] == ("failed", 1)
    assert states["compare"][0] == "upstream_failed"
    counters = runway_conn.counters()
    assert counters["requests"].get("aleph-generate") == 1  # one request, not retried
    assert counters["tasks_total"] == 1


def test_every_example_dag_imports() -> None:
    """The DAG processor's own parse of ``dags/``: ten DAGs, no import error."""
    bag = dag_bag(str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(path.stem for path in DAGS_FOLDER.glob("example_*.py"))
    assert len(bag.dag_ids) == 10


def test_persist_example_stores_the_video(
    runway_conn: Any,
    run_dag: Any,
    xcom: Any,
    ti_states: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The main job end to end: generate (deferred), store the MP4 and thumbnail, report the path."""
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", f"file://{tmp_path}/")  # read when the DAG file is parsed
    dag = load_dag("example_runway_persist")
    dr = run_dag(dag)
    assert {task_id: state for task_id, (state, _) in ti_states(dr).items()} == {
        "generate_and_store": "success",
        "report": "success",
    }
    [video] = tmp_path.rglob("*.mp4")
    result = xcom(dr, "generate_and_store")
    assert result["video_path"] == f"file://{video}"
    assert result["video_size"] == video.stat().st_size > 0
    assert video.with_suffix(".png").stat().st_size == result["thumbnail_size"] > 0
    assert xcom(dr, "report") == result["video_path"]
    assert runway_conn.task_info(result["task_id"])["state"] == "success"
    assert runway_conn.counters()["tasks_total"] == 1


def test_image_from_file_example_uploads_the_still_and_stores_the_video(
    runway_conn: Any,
    run_dag: Any,
    xcom: Any,
    ti_states: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Image-to-video from ``dags/assets/``: the still goes to the simulator's upload host, no public URL."""
    conn = {"conn_type": "runway", "host": runway_conn.url, "password": SIM_API_KEY}
    conn["extra"] = {"upload_base_url": runway_conn.url}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("RUNWAY_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", f"file://{tmp_path}/")  # read when the DAG file is parsed
    monkeypatch.delenv("RUNWAY_INPUT_IMAGE", raising=False)
    dag = load_dag("example_runway_image_from_file")
    dr = run_dag(dag)
    assert {task_id: state for task_id, (state, _) in ti_states(dr).items()} == {
        "animate_file": "success",
        "report": "success",
    }
    uploaded = xcom(dr, "animate_file", "runway_uploaded_inputs")["image_url"]
    assert uploaded.startswith(f"{runway_conn.url}/tempfile/")
    assert requests.get(uploaded, timeout=10).content == (DAGS_FOLDER / "assets" / "sunset_still.png").read_bytes()
    result = xcom(dr, "animate_file")
    print("Runway result:", json.dumps(result, indent=2, sort_keys=True))
    [video] = tmp_path.rglob("*.mp4")
    assert result["video_path"] == f"file://{video}" and result["video_size"] == video.stat().st_size > 0
    counters = runway_conn.counters()
    assert counters["uploads_total"] == 1 and counters["tasks_total"] == 1
