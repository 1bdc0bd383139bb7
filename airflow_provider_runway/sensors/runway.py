"""Sensor that waits for an existing Runway or Aleph task on KIE.ai to finish."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    XComArg,
    conf,
)

from airflow_provider_runway.core import (
    RunwayError,
    RunwayGenerationError,
    RunwayNotFoundError,
    RunwayTask,
    TaskFamily,
    TaskStatus,
)
from airflow_provider_runway.core.models import check_task_id
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.runway import is_templated
from airflow_provider_runway.triggers.runway import NOT_FOUND_GRACE_SECONDS, RunwayTaskTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class RunwayTaskSensor(BaseSensorOperator):
    """
    Wait for a Runway task created elsewhere (another DAG, a script, a webhook flow) to finish.

    Succeeds with the normalised task (``RunwayTask.to_dict()``) as its return value once the task
    succeeded; fails as soon as the task failed or its files expired (skips instead with
    ``soft_fail=True``), not only on timeout. Works in ``poke``, ``reschedule`` and deferrable mode;
    the deferrable one waits in the triggerer through :class:`RunwayTaskTrigger`.

    :param runway_task_id: The Runway task id (templated).
    :param family: ``"runway"`` for generate and extend tasks, ``"aleph"`` for Aleph tasks.
    :param runway_conn_id: Connection to KIE.ai.
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param poke_interval: Seconds between status reads, in every mode (the trigger's poll interval
        when deferrable). ``timeout`` (from :class:`BaseSensorOperator`) becomes the trigger's absolute
        deadline when deferrable.
    :param runway_retry_limit: Retries of one status read on transient errors.
    :param runway_retry_delay: Initial delay between those retries, in seconds.
    """

    template_fields: Sequence[str] = ("runway_task_id", "runway_conn_id")
    ui_color = "#1b1b1b"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        runway_task_id: str | XComArg,
        family: str | TaskFamily = "runway",
        runway_conn_id: str = "runway_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 30,
        runway_retry_limit: int = 5,
        runway_retry_delay: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        # Rendered (or resolved from XCom) into a string before poke or execute runs.
        self.runway_task_id: str = cast("str", runway_task_id)
        self.family = TaskFamily.coerce(family)
        self.runway_conn_id = runway_conn_id
        self.deferrable = deferrable
        self.runway_retry_limit = runway_retry_limit
        self.runway_retry_delay = runway_retry_delay
        self._first_read: float | None = None
        self._seen = False
        if not is_templated(runway_task_id):
            check_task_id(runway_task_id, "runway_task_id")

    @cached_property
    def hook(self) -> RunwayHook:
        """The Runway hook of this sensor."""
        return RunwayHook(self.runway_conn_id, retry_limit=self.runway_retry_limit, retry_delay=self.runway_retry_delay)

    def poke(self, context: Context) -> PokeReturnValue:
        task = self._read_task()
        if task is None:
            return PokeReturnValue(is_done=False)
        self.log.info("Runway task %s is %s (%s)", task.task_id, task.status.value, task.raw_state)
        if not task.is_terminal:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._result(task))

    def _read_task(self) -> RunwayTask | None:
        """The task, or ``None`` when this read failed in a way worth another poke."""
        if self._first_read is None:
            self._first_read = time.monotonic()
        try:
            task = self.hook.get_task(self.runway_task_id, self.family)
        except RunwayNotFoundError as err:
            # KIE may not show a task for a moment after creating it (same grace as the trigger).
            if not self._seen and time.monotonic() - self._first_read < NOT_FOUND_GRACE_SECONDS:
                self.log.info("Runway task %s is not visible yet (404); poking again", self.runway_task_id)
                return None
            raise AirflowFailException(f"Runway task {self.runway_task_id} was not found: {err}") from err
        except RunwayGenerationError as err:
            raise AirflowFailException(f"Runway task {self.runway_task_id} failed: {err}") from err
        except RunwayError as err:
            if err.retryable:
                self.log.warning("Reading Runway task %s failed (%s); poking again", self.runway_task_id, err)
                return None
            raise AirflowFailException(f"Could not read Runway task {self.runway_task_id}: {err}") from err
        self._seen = True
        return task

    def _result(self, task: RunwayTask) -> dict[str, Any]:
        if task.status is TaskStatus.FAILED:
            raise AirflowFailException(
                f"Runway task {task.task_id} failed (fail code {task.fail_code or 'none'}): "
                f"{task.fail_message or 'no reason given'}"
            )
        if task.expired:
            raise AirflowFailException(
                f"Runway task {task.task_id} succeeded but its files have expired (KIE keeps them 14 days)"
            )
        return task.to_dict()

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        with self._soft_fail_skips():
            first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self._defer()
        return None

    def _defer(self) -> None:
        self.defer(
            trigger=RunwayTaskTrigger(
                task_id=self.runway_task_id,
                family=self.family.value,
                runway_conn_id=self.runway_conn_id,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
                retry_limit=self.runway_retry_limit,
                retry_delay=self.runway_retry_delay,
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the task on success; raise on failure, timeout or error (``soft_fail`` skips)."""
        with self._soft_fail_skips():
            return self._complete(event)

    @contextmanager
    def _soft_fail_skips(self) -> Iterator[None]:
        """With ``soft_fail``, a failure or timeout skips the task, as in ``BaseSensorOperator.execute``.

        The deferrable path does not go through that method, and Airflow 3.0 applies ``soft_fail``
        nowhere else.
        """
        try:
            yield
        except (AirflowFailException, AirflowSensorTimeout) as err:
            if self.soft_fail:
                raise AirflowSkipException(str(err)) from err
            raise

    def _complete(self, event: Mapping[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        message = str(event.get("message") or "")
        task_dict = event.get("task")
        task = RunwayTask.from_dict(task_dict) if isinstance(task_dict, Mapping) else None
        if status in ("success", "failed") and task is not None and (task.is_terminal or task.expired):
            return self._result(task)
        if status == "failed":
            raise AirflowFailException(message or f"Runway task {self.runway_task_id} failed")
        if status == "timeout":
            raise AirflowSensorTimeout(message or f"Runway task {self.runway_task_id} did not finish in time")
        raise AirflowException(f"Waiting for Runway task {self.runway_task_id} failed: {message or event!r}")
