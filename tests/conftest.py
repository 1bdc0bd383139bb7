"""Shared test setup: a throwaway Airflow home on SQLite, created before Airflow is imported."""

from __future__ import annotations

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
    yield _AIRFLOW_HOME


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
