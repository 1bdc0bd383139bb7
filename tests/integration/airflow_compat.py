"""What the integration tests need from Airflow's internals, for each supported version (2.11, 3.0-3.3).

The tests themselves are written once; only the plumbing around ``dag.test()`` differs: how a DAG is
stored in the metadata DB, which ORM class holds XComs, and which REST API the webserver serves.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_runway.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_1_PLUS,
    get_base_airflow_version_tuple,
)

#: ``DagBag`` moved to ``airflow.dag_processing`` in 3.2.
AIRFLOW_V_3_2_PLUS = get_base_airflow_version_tuple() >= (3, 2, 0)

#: Prefix of every Airflow Variable key the provider may write (the resume record below Airflow 3.3).
RUNWAY_VARIABLE_PREFIX = "runway"


def serialize_dag(dag: Any) -> None:
    """Store ``dag`` in the metadata DB as the DAG processor would (``dag.test()`` and the REST API need it)."""
    from airflow.utils.session import create_session

    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.serialized_dag import SerializedDagModel

        with create_session() as session:
            dag.sync_to_db(session=session)
            SerializedDagModel.write_dag(dag, session=session)
        return

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    if AIRFLOW_V_3_1_PLUS:
        with create_session() as session:
            update_dag_parsing_results_in_db(
                "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
            )
        return
    # 3.0: no ``from_dag`` and no parse-duration argument yet; the DagBag sets ``relative_fileloc``.
    from airflow.serialization.serialized_objects import SerializedDAG

    if dag.relative_fileloc is None:
        dag.relative_fileloc = dag.fileloc
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))], {}, set(), session=session
        )


def xcom_model() -> Any:
    """The ORM class of the ``xcom`` table: ``XComModel`` on Airflow 3, ``XCom`` (``BaseXCom``) on 2.11."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import XCom

    return XCom


def read_xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """One XCom value straight from the metadata DB, or None when there is no such row."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    model = xcom_model()
    with create_session() as session:
        row = session.scalars(
            select(model).where(
                model.dag_id == dag_id,
                model.run_id == run_id,
                model.task_id == task_id,
                model.key == key,
                model.map_index == map_index,
            )
        ).first()
        if row is None:
            return None
        # 2.11 deserialises the value when it loads the row; 3.x keeps the stored JSON.
        return model.deserialize_value(row) if AIRFLOW_V_3_0_PLUS else row.value


def runway_variables() -> dict[str, str]:
    """Every Airflow Variable whose key starts with ``runway``, read straight from the metadata DB."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.startswith(RUNWAY_VARIABLE_PREFIX))).all()
        return {row.key: row.val for row in rows}


def reschedule_count(dag_id: str, run_id: str, task_id: str) -> int:
    """How often a sensor in ``reschedule`` mode gave its worker slot back (rows of ``task_reschedule``)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    query = select(func.count()).select_from(TaskReschedule)
    if AIRFLOW_V_3_0_PLUS:  # rows point at the task instance's id
        from airflow.models.taskinstance import TaskInstance

        query = query.join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
        )
    else:  # 2.11: rows carry the task instance's key
        query = query.where(
            TaskReschedule.dag_id == dag_id, TaskReschedule.run_id == run_id, TaskReschedule.task_id == task_id
        )
    with create_session() as session:
        return int(session.scalar(query) or 0)


def dag_bag(folder: str) -> Any:
    """A ``DagBag`` of ``folder`` as the DAG processor parses it (no Airflow examples)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=folder)  # examples are off in the test config; no argument for it any more
    from airflow.models.dagbag import DagBag as LegacyDagBag

    return LegacyDagBag(dag_folder=folder, include_examples=False)


def extra_link(dag_id: str, run_id: str, task_id: str, link_class: str, link_name: str) -> Any:
    """The URL an operator extra link shows for a finished task instance.

    Airflow 3 computes it when the try ends and stores it as the XCom ``_link_<class name>``; 2.11's
    webserver computes it on request from the serialized operator, as done here.
    """
    if AIRFLOW_V_3_0_PLUS:
        return read_xcom(dag_id, run_id, task_id, key=f"_link_{link_class}")
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    task = SerializedDagModel.get_dag(dag_id).get_task(task_id)
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        ).one()
        return task.get_extra_links(ti, link_name)
