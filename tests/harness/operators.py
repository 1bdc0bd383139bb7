"""Operators run outside Airflow: file-backed state stores and Variables, a stand-in task instance, a worker."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Hook, trigger and operator settings that keep retries fast but real.
RETRY_DELAY = 0.01
POLL_INTERVAL = 0.05


class StateStore:
    """A ``task_state_store`` kept in a JSON file, so it survives the process (a killed worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        data = {**self._read(), key: value}
        partial = self.path.with_suffix(".tmp")
        with partial.open("w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.path)


class FileVariables:
    """Airflow Variables kept in files, for operators run outside Airflow below 3.3 (one file per key).

    Below Airflow 3.3 the operators keep their resume record in an Airflow Variable instead of
    ``task_state_store``; outside a task (no Task SDK supervisor, no task runner) this stands in for
    it as :class:`StateStore` does for ``task_state_store``. The folder is shared with the killed
    worker's process through ``RUNWAY_FAULTS_VARIABLES_DIR``.
    """

    @staticmethod
    def _path(key: str) -> Path:
        return Path(os.environ["RUNWAY_FAULTS_VARIABLES_DIR"]) / hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def get(cls, key: str, default: Any = None, default_var: Any = None, **_: Any) -> Any:
        try:
            return cls._path(key).read_text()
        except FileNotFoundError:
            return default if default is not None else default_var

    @classmethod
    def set(cls, key: str, value: Any, **_: Any) -> None:
        path = cls._path(key)
        partial = path.with_suffix(".tmp")
        partial.write_text(str(value))
        partial.replace(path)

    @classmethod
    def delete(cls, key: str) -> None:
        cls._path(key).unlink(missing_ok=True)


def use_file_variables() -> Callable[[], None]:
    """Below Airflow 3.3, point the operators' resume record at :class:`FileVariables`; returns the undo."""
    from airflow_provider_runway.operators import _resumable
    from airflow_provider_runway.version_compat import AIRFLOW_V_3_3_PLUS

    names = vars(_resumable)  # the module's globals: Variable is looked up there at call time
    original = names["Variable"]
    if not AIRFLOW_V_3_3_PLUS:
        if not os.environ.get("RUNWAY_FAULTS_VARIABLES_DIR"):  # inherited by the killed worker's process
            os.environ["RUNWAY_FAULTS_VARIABLES_DIR"] = tempfile.mkdtemp(prefix="runway-variables-")
        names["Variable"] = FileVariables

    def restore() -> None:
        names["Variable"] = original

    return restore


class FakeTI:
    """The parts of a task instance the operators use: identity, try number, XCom pushes, stats tags.

    The identity comes from the task's state store, so every store is its own task instance and a
    later try (even in another process) with the same store is the same task instance.
    """

    def __init__(self, store: Any = None) -> None:
        self.stats_tags: dict[str, str] = {}
        self.xcoms: dict[str, Any] = {}
        self.dag_id = "fault_scenarios"
        self.run_id = str(getattr(store, "path", id(self)))
        self.task_id = "generate"
        self.map_index = -1
        self.try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def operator_context(store: Any) -> dict[str, Any]:
    return {"ti": FakeTI(store), "task_state_store": store, "params": {}}


def fresh_contexts(count: int, state_dir: Path | None = None) -> list[dict[str, Any]]:
    """``count`` task contexts, each with its own state store (in ``state_dir``, or a new folder)."""
    folder = state_dir or Path(tempfile.mkdtemp(prefix="runway-state-"))
    return [operator_context(StateStore(folder / f"{index}.json")) for index in range(count)]


def generate_operator(index: int, **kwargs: Any) -> Any:
    from airflow_provider_runway.operators.runway import RunwayGenerateOperator

    settings: dict[str, Any] = {
        "poll_interval": POLL_INTERVAL,
        "runway_retry_delay": RETRY_DELAY,
        "runway_retry_limit": 3,
        "timeout": 60,
        **kwargs,
    }
    return RunwayGenerateOperator(task_id=f"generate_{index}", prompt=f"fault scenario task {index}", **settings)


def operator_thread_ready() -> None:
    """Let ``execute`` run in this thread on Airflow 2.11, whose guard keeps its state per thread."""
    from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.baseoperator import ExecutorSafeguard

        if not hasattr(ExecutorSafeguard._sentinel, "callers"):  # set only in the importing thread
            ExecutorSafeguard._sentinel.callers = {}


def worker_main(state_dir: str, count: str) -> None:
    """The first try of ``count`` sync operators in one worker process; the parent kills it mid-wait."""
    use_file_variables()
    contexts = fresh_contexts(int(count), Path(state_dir))

    def execute(index: int) -> None:
        operator_thread_ready()
        generate_operator(index).execute(contexts[index])

    threads = [threading.Thread(target=execute, args=(index,), daemon=True) for index in range(int(count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stored_ids(contexts: list[dict[str, Any]]) -> list[str | None]:
    """The Runway task id each context's first try recorded for its resume (``None`` if not yet)."""
    from airflow_provider_runway.links.runway import RUNWAY_TASK_ID_XCOM_KEY
    from airflow_provider_runway.operators._resumable import record_key
    from airflow_provider_runway.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:
        return [context["task_state_store"].get(RUNWAY_TASK_ID_XCOM_KEY) for context in contexts]
    # Below 3.3 the record is a (file-backed) Variable keyed by the task instance.
    return [FileVariables.get(record_key(context, RUNWAY_TASK_ID_XCOM_KEY)) for context in contexts]  # type: ignore[arg-type]
