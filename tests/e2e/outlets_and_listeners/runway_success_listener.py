"""A listener plugin for ``tests/e2e/test_outlets_and_listeners.py``, copied into the test's plugins folder.

It records each ``on_task_instance_running`` and ``on_task_instance_success`` call as a JSON line in
``$RUNWAY_E2E_RECORDS/listener.jsonl``, as a lineage listener (OpenLineage) would see the task.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

RECORDS_ENV = "RUNWAY_E2E_RECORDS"


def record(hook: str, task_instance: Any) -> None:
    line = {
        "hook": hook,
        "dag_id": task_instance.dag_id,
        "run_id": task_instance.run_id,
        "task_id": task_instance.task_id,
        "try_number": task_instance.try_number,
    }
    with (Path(os.environ[RECORDS_ENV]) / "listener.jsonl").open("a") as records:
        records.write(json.dumps(line) + "\n")


class TaskInstanceRecorder:
    """Implements two of Airflow's task-instance listener hooks (a subset of each spec's arguments suffices)."""

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        record("running", task_instance)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        record("success", task_instance)


class RunwayE2EListenerPlugin(AirflowPlugin):
    name = "runway_e2e_listener"
    listeners = [TaskInstanceRecorder()]
