"""Resume support for Airflow versions without ``task_state_store`` (before 3.3).

Airflow 3.3 ships ``ResumableJobMixin``, which keeps the remote job id in the task instance's
``task_state_store`` so a retry attaches to the job instead of submitting it again. On older
versions this stand-in offers the same interface and keeps the id in an Airflow Variable keyed by
DAG id, run id, task id and map index. The Variable lives exactly as long as a later try may need
it: it is deleted at every end of the task instance (success, skip, a failure without retries
left, a failure Airflow does not retry), and kept only across a deferral or a retryable failure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
    Variable,
)

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

VARIABLE_PREFIX = "runway_provider_resume"


def record_key(context: Context, external_id_key: str) -> str:
    """Variable key of one task instance's record (shared by all its tries)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    map_index = -1 if map_index is None else map_index
    return f"{VARIABLE_PREFIX}:{ti.dag_id}:{ti.run_id}:{ti.task_id}:{map_index}:{external_id_key}"


def read_record(key: str) -> str | None:
    """The stored external id, or None (Airflow 2 names the default ``default_var``)."""
    if not AIRFLOW_V_3_0_PLUS:
        stored = Variable.get(key, default_var=None)  # type: ignore[call-arg]
        return str(stored) if stored else None
    value = Variable.get(key, default=None)
    return str(value) if value else None


def write_record(key: str, external_id: str) -> None:
    """Store ``external_id`` as the record under ``key``."""
    Variable.set(key, external_id)


def remember(context: Context, external_id_key: str, external_id: str) -> None:
    """Store ``external_id`` where a later try of the task instance looks for it (e.g. a replacement task).

    The task state store on Airflow 3.3 and later (the ``ResumableJobMixin``'s), else this module's Variable.
    """
    if AIRFLOW_V_3_3_PLUS:
        store = context.get("task_state_store")
        if store is not None:
            store.set(external_id_key, external_id)
        return
    write_record(record_key(context, external_id_key), external_id)


def delete_record(key: str) -> None:
    """Delete the record; a missing one is fine."""
    Variable.delete(key)


def is_final_end(error: BaseException, context: Context) -> bool:
    """Whether ``error`` ends the task instance for good, so no later try will read the record."""
    if isinstance(error, TaskDeferred):
        return False
    if isinstance(error, (AirflowFailException, AirflowSkipException)):
        return True
    ti = context["ti"]
    task = context.get("task") or getattr(ti, "task", None)
    retries = getattr(task, "retries", 0) or 0
    return int(ti.try_number) > int(retries)


@contextmanager
def record_scope(context: Context, external_id_key: str) -> Iterator[None]:
    """Delete the task instance's record when the code inside ends the task instance."""
    key = record_key(context, external_id_key)
    try:
        yield
    except BaseException as error:
        if is_final_end(error, context):
            delete_record(key)
        raise
    delete_record(key)


class VariableResumableJobMixin(ABC):
    """``ResumableJobMixin`` for Airflow < 3.3, storing the external id in an Airflow Variable."""

    external_id_key: str = "remote_job_id"

    def __init__(self, *, durable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durable = durable

    def execute_resumable(self, context: Context) -> Any:
        """Attach to the job a previous try created when it is active or succeeded, else submit one."""
        if not self.durable:
            external_id = self.submit_job(context)
            self.poll_until_complete(external_id, context)
            return self.get_job_result(external_id, context)
        key = record_key(context, self.external_id_key)
        with record_scope(context, self.external_id_key):
            stored = read_record(key)
            if stored:
                status = self.get_job_status(stored, context)
                if self.is_job_active(status):
                    self.poll_until_complete(stored, context)
                    return self.get_job_result(stored, context)
                if self.is_job_succeeded(status):
                    return self.get_job_result(stored, context)
            external_id = self.submit_job(context)
            write_record(key, external_id)
            self.poll_until_complete(external_id, context)
            return self.get_job_result(external_id, context)

    def resumed_scope(self, context: Context) -> Any:
        """The record's scope for code that finishes a deferred try (``execute_complete``)."""
        return record_scope(context, self.external_id_key)

    @abstractmethod
    def submit_job(self, context: Context) -> Any: ...

    @abstractmethod
    def get_job_status(self, external_id: Any, context: Context) -> str: ...

    @abstractmethod
    def is_job_active(self, status: str) -> bool: ...

    @abstractmethod
    def is_job_succeeded(self, status: str) -> bool: ...

    @abstractmethod
    def poll_until_complete(self, external_id: Any, context: Context) -> Any: ...

    @abstractmethod
    def get_job_result(self, external_id: Any, context: Context) -> Any: ...
