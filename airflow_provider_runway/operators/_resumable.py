"""Resume support for Airflow versions without ``task_state_store`` (before 3.3).

Airflow 3.3 ships :class:`airflow.sdk.ResumableJobMixin`, which keeps the remote job id in the task
instance's ``task_state_store`` so a retry attaches to the job instead of submitting it again. On
older versions this stand-in offers the same interface and keeps the id in an Airflow Variable keyed
by DAG id, run id, task id and map index, deleted once the task succeeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from airflow.sdk import Variable

if TYPE_CHECKING:
    from airflow.sdk import Context

VARIABLE_PREFIX = "runway_provider_resume"


def record_key(context: Context, external_id_key: str) -> str:
    """Variable key of one task instance's record (shared by all its tries)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    map_index = -1 if map_index is None else map_index
    return f"{VARIABLE_PREFIX}:{ti.dag_id}:{ti.run_id}:{ti.task_id}:{map_index}:{external_id_key}"


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
        stored = Variable.get(key, default=None)
        if stored:
            status = self.get_job_status(stored, context)
            if self.is_job_active(status):
                self.poll_until_complete(stored, context)
                return self._finish_resumable(key, stored, context)
            if self.is_job_succeeded(status):
                return self._finish_resumable(key, stored, context)
        external_id = self.submit_job(context)
        Variable.set(key, external_id)
        self.poll_until_complete(external_id, context)
        return self._finish_resumable(key, external_id, context)

    def _finish_resumable(self, key: str, external_id: Any, context: Context) -> Any:
        result = self.get_job_result(external_id, context)
        Variable.delete(key)
        return result

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
