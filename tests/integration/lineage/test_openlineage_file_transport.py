"""The OpenLineage provider's own listener, writing events to disk with its file transport, in ``airflow dags test``.

A separate process (as a worker is), against the simulator over loopback: the COMPLETE event of a generate task
whose input image comes from object storage (a local ``file://`` ``ObjectStoragePath``) and whose video is
stored with ``download_to`` names both files as datasets and carries the Runway run facet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SIM_API_KEY

pytestmark = pytest.mark.integration
pytest.importorskip("airflow.providers.openlineage", reason="needs the openlineage extra (the matrix installs it)")

STILL = Path(__file__).resolve().parents[3] / "dags" / "assets" / "sunset_still.png"
DAG_ID = "runway_openlineage_file_transport"


def write_dag(folder: Path, image: Path, out: Path) -> None:
    folder.mkdir()
    (folder / "openlineage_dag.py").write_text(
        textwrap.dedent(
            f'''
            from datetime import datetime

            from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath

            from airflow_provider_runway.operators.runway import RunwayGenerateOperator

            with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
                RunwayGenerateOperator(
                    task_id="animate",
                    prompt="The sun sets over the sea",
                    image_url=ObjectStoragePath("file://{image}"),
                    duration=5,
                    quality="720p",
                    download_to="file://{out}/",
                    deferrable=True,
                    poll_interval=0.05,
                )
            '''
        )
    )


def run_dags_test(tmp_path: Path, sim_url: str, events: Path) -> subprocess.CompletedProcess[str]:
    """``airflow dags test`` on the test session's metadata database (``airflow_db`` made it), in a new process."""
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "runway-tests",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(
            {"conn_type": "runway", "host": sim_url, "password": SIM_API_KEY, "extra": {"upload_base_url": sim_url}}
        ),
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "2026-01-02"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_complete_event_names_the_input_the_stored_video_and_the_runway_task(
    airflow_db: str, runway_conn: Any, tmp_path: Path
) -> None:
    image = tmp_path / "in" / "sunset_still.png"
    image.parent.mkdir()
    shutil.copyfile(STILL, image)
    out, events = tmp_path / "out", tmp_path / "openlineage.jsonl"
    write_dag(tmp_path / "dags", image, out)

    run = run_dags_test(tmp_path, runway_conn.url, events)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    [complete] = [e for e in lines if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.animate"]
    [video] = list(out.glob("*.mp4"))
    runway_task_id = video.stem
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [("file", str(image))]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [("file", str(video))]
    facet = complete["run"]["facets"]["runway"]
    assert facet["runwayTaskId"] == runway_task_id
    assert facet["credits"] == 60 == runway_conn.account(SIM_API_KEY)["credits_spent"]
    assert {key: facet[key] for key in ("family", "model", "duration", "quality", "charged", "state")} == {
        "family": "runway",
        "model": "runway-gen4-turbo",
        "duration": 5,
        "quality": "720p",
        "charged": True,
        "state": "succeeded",
    }
    assert SIM_API_KEY not in events.read_text()  # the key never reaches lineage
    print(json.dumps(complete, indent=2))  # the event, as pasted in the report
