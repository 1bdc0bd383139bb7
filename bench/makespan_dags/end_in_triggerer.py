"""Variant ``C`` of the makespan benchmark (opt-in): the provider's operator, ending its task in the triggerer.

A preview of issue 15's "end in the triggerer": a trigger that wraps :class:`RunwayTaskTrigger` and,
when the wait ends in a usable success, yields
:func:`~airflow_provider_runway.triggers.task_end.task_end_event` (the result and the result-URL XCom)
instead of the event that resumes the task on a worker. Anything else (failure, expiry, timeout, an
Airflow without task-end events) resumes on the worker as today.

It builds on the operator's and trigger's internals as of this commit (``_defer``, the event's
``status``/``task`` keys): it exists to measure the gain, not as the implementation. The trigger must be
importable by the triggerer, hence this module (the benchmark puts the repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_runway.core.results import RunwayTask, TaskStatus
from airflow_provider_runway.links.runway import RUNWAY_RESULT_URL_XCOM_KEY
from airflow_provider_runway.operators.runway import RESULT_KEYS, RunwayGenerateOperator
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.triggers.task_end import task_end_event


class EndInTriggererTrigger(RunwayTaskTrigger):
    """:class:`RunwayTaskTrigger` that ends its task itself on a usable success."""

    def __init__(self, *, multiple_outputs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multiple_outputs = multiple_outputs

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.EndInTriggererTrigger", {**kwargs, "multiple_outputs": self.multiple_outputs}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            ended = self._task_end(event.payload)
            yield ended if ended is not None else event
            return

    def _task_end(self, payload: Any) -> TriggerEvent | None:
        if not isinstance(payload, Mapping) or payload.get("status") != "success":
            return None
        task_dict = payload.get("task")
        if not isinstance(task_dict, Mapping):
            return None
        task = RunwayTask.from_dict(task_dict)
        if task.status is not TaskStatus.SUCCEEDED or task.expired:
            return None
        result = {key: value for key, value in task.to_dict().items() if key in RESULT_KEYS}
        extra = {RUNWAY_RESULT_URL_XCOM_KEY: task.video_url} if task.video_url else None
        return task_end_event(result, multiple_outputs=self.multiple_outputs, extra_xcoms=extra)


class EndInTriggererOperator(RunwayGenerateOperator):
    """:class:`RunwayGenerateOperator` whose deferral uses :class:`EndInTriggererTrigger`."""

    def _defer(self, task_id: str, try_number: int | None = None) -> None:
        self.defer(
            trigger=EndInTriggererTrigger(
                task_id=task_id,
                family=self.family.value,
                runway_conn_id=self.runway_conn_id,
                poll_interval=self.poll_interval,
                end_time=time.time() + self.timeout,
                retry_limit=self.runway_retry_limit,
                retry_delay=self.runway_retry_delay,
                multiple_outputs=self.multiple_outputs,
            ),
            method_name="execute_complete",
            kwargs=None if try_number is None else {"deferred_try": try_number},
            timeout=None,
        )
