"""Shared test setup: a throwaway Airflow home on SQLite, created before Airflow is imported."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the shared harness is imported as ``tests.harness``
    sys.path.insert(0, str(REPO_ROOT))

# The simulator's fixtures (``runway_sim``): opt-in, as any project using the provider would load them.
pytest_plugins = ["airflow_provider_runway.simulator.pytest_plugin"]

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="runway-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[str]:
    """Create the SQLite metadata database once per test session; yields the AIRFLOW_HOME."""
    from airflow.utils import db

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    db.initdb()
    # Airflow 2.11's migrations run alembic's fileConfig, which sets the root logger to WARNING with a handler
    # on the stderr of that moment: every later test would capture no log line.
    root.setLevel(level)
    root.handlers[:] = handlers
    _share_the_in_process_execution_api()
    yield _AIRFLOW_HOME


def _share_the_in_process_execution_api() -> None:
    """Give ``dag.test()`` on Airflow 3.0-3.2 one in-process Execution API app, as Airflow 3.3 does.

    Before 3.3, ``airflow.sdk.execution_time.supervisor.in_process_api_server`` built a new Cadwyn app for each
    task ``dag.test()`` ran, and each new app generated its versioned routers again: 1-4 s of CPU per task, most
    of those sessions' run time. Airflow 3.3 wraps the same function in ``functools.lru_cache(maxsize=1)``; this
    does the same on the versions before it. It changes no behaviour under test: one app serves every request,
    as on 3.3 and in a real api-server.
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:  # Airflow 2.11: dag.test() runs tasks without the Execution API
        return
    build = supervisor.in_process_api_server
    if not hasattr(build, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)  # type: ignore[assignment]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
