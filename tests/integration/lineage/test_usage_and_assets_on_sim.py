"""``runway_usage`` and outlet-event ``extra`` in real Airflow (``dag.test()``) against the simulator's charging."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS
from tests.integration.conftest import SIM_API_KEY

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {"poll_interval": 0.05}
_ids = itertools.count()


def new_dag(name: str) -> DAG:
    return DAG(f"{name}_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1))


def spent(sim: Any) -> int:
    """Credits the simulator deducted from the test account, by its own price table."""
    return int(sim.account(SIM_API_KEY)["credits_spent"])


def asset_events(dag_run: Any) -> list[dict[str, Any]]:
    """The asset (Airflow 2: dataset) events the run's tasks emitted: ``{"uri", "extra"}`` each."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
    else:
        from airflow.models.dataset import DatasetEvent as Event
    with create_session() as session:
        rows = session.scalars(
            select(Event).where(Event.source_dag_id == dag_run.dag_id, Event.source_run_id == dag_run.run_id)
        ).all()
        return [{"uri": (row.asset if AIRFLOW_V_3_0_PLUS else row.dataset).uri, "extra": row.extra} for row in rows]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_usage_after_a_success_is_what_the_simulator_charged(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    with new_dag("usage_ok") as dag:
        RunwayGenerateOperator(
            task_id="gen", prompt="A fox", duration=10, quality="720p", deferrable=deferrable, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    usage = xcom(dr, "gen", "runway_usage")
    assert usage == {
        "task_id": xcom(dr, "gen", "runway_task_id"),
        "family": "runway",
        "duration": 10,
        "quality": "720p",
        "credits": 120,
        "charged": True,
        "reason": None,
    }
    assert usage["credits"] == spent(runway_conn) == 120


@pytest.mark.runway_sim(failure_rate=1.0)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_usage_after_a_remote_failure_is_charged_as_the_simulator_charged(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    with new_dag("usage_failed") as dag:
        RunwayGenerateOperator(
            task_id="gen", prompt="A fox", duration=5, quality="1080p", deferrable=deferrable, **FAST
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("failed", 1)}
    usage = xcom(dr, "gen", "runway_usage")
    assert usage["task_id"] == xcom(dr, "gen", "runway_task_id")
    assert (usage["credits"], usage["charged"], usage["quality"]) == (70, True, "1080p")
    assert usage["credits"] == spent(runway_conn)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_outlet_events_carry_the_video_metadata(
    deferrable: bool, runway_conn: Any, run_dag: Any, xcom: Any, ti_states: Any, tmp_path: Path
) -> None:
    videos = Asset(f"file://{tmp_path}/videos")
    with new_dag("usage_outlets") as dag:
        RunwayGenerateOperator(
            task_id="gen",
            prompt="A fox",
            duration=5,
            quality="720p",
            deferrable=deferrable,
            download_to=f"file://{tmp_path}/videos/",
            outlets=[videos],
            **FAST,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"gen": ("success", 1)}
    runway_task_id = xcom(dr, "gen", "runway_task_id")
    stored = Path(tmp_path / "videos" / f"{runway_task_id}.mp4")
    [event] = asset_events(dr)
    assert event["uri"].rstrip("/") == f"file://{tmp_path}/videos"
    assert event["extra"] == {
        "runway_task_id": runway_task_id,
        "family": "runway",
        "duration": 5,
        "quality": "720p",
        "video_url": xcom(dr, "gen", "video_url").split("?")[0],
        "credits": 60,
        "video_path": f"file://{stored}",
        "video_size": stored.stat().st_size,
    }
    assert "?" not in event["extra"]["video_url"]
