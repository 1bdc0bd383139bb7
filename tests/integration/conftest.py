"""Run DAGs with ``dag.test()`` in real Airflow against the bundled simulator over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

SIM_API_KEY = "sim-operator-test-key"


@pytest.fixture
def sim_api_key() -> str:
    """The API key of the ``runway_default`` connection in these tests."""
    return SIM_API_KEY


@pytest.fixture
def runway_conn(runway_sim: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the ``runway_default`` connection at the test's simulator; yields the simulator."""
    conn = {"conn_type": "runway", "host": runway_sim.url, "password": SIM_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return runway_sim


def _serialize(dag: Any) -> None:
    """Store the DAG in the metadata DB, which ``dag.test()`` requires (no DAG folder parse)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


@pytest.fixture
def run_dag(airflow_db: str) -> Callable[..., Any]:
    """``run_dag(dag, **test_kwargs)``: serialize the DAG and run it once with ``dag.test()``."""

    def run(dag: Any, **kwargs: Any) -> Any:
        _serialize(dag)
        return dag.test(**kwargs)

    return run


@pytest.fixture
def xcom(airflow_db: str) -> Callable[..., Any]:
    """``xcom(dag_run, task_id, key="return_value", map_index=-1)``: an XCom value from the DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def read(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        with create_session() as session:
            row = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_run.dag_id,
                    XComModel.run_id == dag_run.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    return read


@pytest.fixture
def ti_states(airflow_db: str) -> Callable[[Any], dict[str, tuple[str, int]]]:
    """``ti_states(dag_run)``: ``{task_id or task_id[map_index]: (state, try_number)}``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def states(dag_run: Any) -> dict[str, tuple[str, int]]:
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            ).all()
            return {
                ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": (str(ti.state), ti.try_number)
                for ti in tis
            }

    return states


@pytest.fixture
def failures() -> tuple[Callable[[Any], None], list[str]]:
    """An ``on_failure_callback`` and the list of exception messages it collects."""
    messages: list[str] = []

    def record(context: Any) -> None:
        messages.append(f"{type(context['exception']).__name__}: {context['exception']}")

    return record, messages
