"""Run DAGs with ``dag.test()`` in real Airflow against the bundled simulator over loopback HTTP."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

SIM_API_KEY = "sim-operator-test-key"


def _airflow_version() -> tuple[int, int, int]:
    """The installed Airflow's ``(major, minor, micro)``; ``(0, 0, 0)`` where none is installed.

    The Airflow-free session (``tests-airflow-free`` in ``noxfile.py``) runs ``tests/integration/simulator``
    under this conftest, so importing it must not import Airflow.
    """
    if importlib.util.find_spec("airflow") is None:
        return (0, 0, 0)
    from airflow_provider_runway.version_compat import get_base_airflow_version_tuple

    return get_base_airflow_version_tuple()


@pytest.fixture
def sim_api_key() -> str:
    """The API key of the ``runway_default`` connection in these tests."""
    return SIM_API_KEY


@pytest.fixture(autouse=True, scope="session")
def _exception_in_callback_context() -> Iterator[None]:
    """On Airflow 3.0 to 3.2, give ``dag.test()``'s callbacks ``context["exception"]`` as a worker does.

    Their task runner sets it before running the callbacks, but their in-process runner (``dag.test()``)
    does not (3.3 does); without it a failure callback cannot tell why the task failed.
    """
    if not (3, 0, 0) <= _airflow_version() < (3, 3, 0):
        yield
        return
    from airflow.sdk.execution_time import task_runner

    original = task_runner.finalize

    def finalize(ti: Any, state: Any, context: Any, log: Any, error: BaseException | None = None) -> Any:
        context["exception"] = error
        return original(ti, state, context, log, error)

    task_runner.finalize = finalize
    try:
        yield
    finally:
        task_runner.finalize = original


@pytest.fixture(autouse=True, scope="session")
def _task_sdk_log_level_on_3_0() -> None:
    """On Airflow 3.0, configure the Task SDK's logging in ``dag.test()`` as a worker does.

    3.0 leaves structlog unconfigured in ``dag.test()``: its defaults print every debug line, including
    each message the in-process supervisor relays (a ``MaskSecret`` carries the secret to mask), and
    render tracebacks with every frame's local variables. A worker configures structlog first, with
    the ``[logging] logging_level`` (INFO here) and tracebacks without locals.
    """
    if (3, 0, 0) <= _airflow_version() < (3, 1, 0):
        import logging

        import structlog

        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.StackInfoRenderer(),
                structlog.dev.set_exc_info,
                structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
                structlog.dev.ConsoleRenderer(
                    exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
                ),
            ],
        )


@pytest.fixture
def runway_conn(runway_sim: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the ``runway_default`` connection at the test's simulator; yields the simulator."""
    conn = {"conn_type": "runway", "host": runway_sim.url, "password": SIM_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return runway_sim


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's ``dag.test()`` did to logging, so the next test's log capture starts clean.

    Airflow 2.11's in-process task run reconfigures logging (the root logger at WARNING with a handler on the
    stream of that moment, a console handler added to ``airflow.task``); later tests would capture nothing.
    """
    names = ("", "airflow", "airflow.task", "airflow.task.hooks")
    saved = {name: (lg.level, list(lg.handlers), lg.propagate) for name in names for lg in [logging.getLogger(name)]}
    yield
    for name, (level, handlers, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


@pytest.fixture
def run_dag(airflow_db: str) -> Callable[..., Any]:
    """``run_dag(dag, **test_kwargs)``: serialize the DAG and run it once with ``dag.test()``."""
    from tests.integration.airflow_compat import serialize_dag

    def run(dag: Any, **kwargs: Any) -> Any:
        serialize_dag(dag)
        return dag.test(**kwargs)

    return run


@pytest.fixture
def xcom(airflow_db: str) -> Callable[..., Any]:
    """``xcom(dag_run, task_id, key="return_value", map_index=-1)``: an XCom value from the DB."""
    from tests.integration.airflow_compat import read_xcom

    def read(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return read_xcom(dag_run.dag_id, dag_run.run_id, task_id, key, map_index)

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
