"""Sensor that waits for an existing Runway or Aleph task on KIE.ai to finish."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any, cast

import pendulum
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    XComArg,
    conf,
)

from airflow_provider_runway.core import TaskFamily
from airflow_provider_runway.core.models import check_task_id
from airflow_provider_runway.core.parameters import is_templated
from airflow_provider_runway.core.wait import Outcome, WaitDecision, WaitPolicy, WaitState, wait_sync
from airflow_provider_runway.exceptions import RunwayWaitError
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _epoch(value: Any) -> float | None:
    """Unix epoch seconds of a datetime (or of the ISO string Airflow 3.0's client returns), else ``None``."""
    if isinstance(value, str):
        value = pendulum.parse(value)
    return value.timestamp() if isinstance(value, datetime) else None


class RunwayTaskSensor(BaseSensorOperator):
    """
    Wait for a Runway task created elsewhere (another DAG, a script, a webhook flow) to finish.

    Succeeds with the normalised task (``RunwayTask.to_dict()``) as its return value once the task
    succeeded; fails as soon as the task failed or its files expired (skips instead with
    ``soft_fail=True``), not only on timeout. Works in ``poke``, ``reschedule`` and deferrable mode;
    the deferrable one waits in the triggerer through :class:`RunwayTaskTrigger`.

    Every status read is judged by :class:`~airflow_provider_runway.core.wait.WaitPolicy`, as in the
    operators: a 404 means "not visible yet" for 30 seconds from the first try's start (which a
    reschedule keeps), and a read that fails transiently is repeated within the poke, with back-off,
    until five in a row have failed.

    :param runway_task_id: The Runway task id (templated).
    :param family: ``"runway"`` for generate and extend tasks, ``"aleph"`` for Aleph tasks.
    :param runway_conn_id: Connection to KIE.ai.
    :param deferrable: Wait in the triggerer instead of a worker slot.
    :param poke_interval: Seconds between status reads, in every mode (the trigger's poll interval
        when deferrable). ``timeout`` (from :class:`BaseSensorOperator`) becomes the trigger's absolute
        deadline when deferrable.
    :param runway_retry_limit: Retries of one status read on transient errors; ``None`` (the default)
        uses the connection's ``retry_limit`` extra, else 5.
    :param runway_retry_delay: Initial delay between those retries, in seconds; ``None`` (the default)
        uses the connection's ``retry_delay`` extra, else 1.
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
        runway_retry_limit: int | None = None,
        runway_retry_delay: float | None = None,
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
        self._wait_state: WaitState | None = None
        if not is_templated(runway_task_id):
            check_task_id(runway_task_id, "runway_task_id")

    @cached_property
    def hook(self) -> RunwayHook:
        """The Runway hook of this sensor."""
        return RunwayHook(self.runway_conn_id, retry_limit=self.runway_retry_limit, retry_delay=self.runway_retry_delay)

    def poke(self, context: Context) -> PokeReturnValue:
        decision = self._read(context)
        if not decision.finished:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(decision))

    def _read(self, context: Context) -> WaitDecision:
        """Read the task and judge it; a failed read is repeated (with back-off) within this poke."""
        if self._wait_state is None:
            self._wait_state = WaitState(started_at=self._wait_started(context))
        decision = wait_sync(
            lambda: self.hook.get_task(self.runway_task_id, self.family),
            self._policy(self._wait_state),
            self._wait_state,
            log=self.log,
            until_pending=True,
        )
        self._wait_state = decision.state
        if decision.task is not None and not decision.finished:
            task = decision.task
            self.log.info("Runway task %s is %s (%s)", task.task_id, task.status.value, task.raw_state)
        return decision

    def _policy(self, state: WaitState) -> WaitPolicy:
        return WaitPolicy(
            self.runway_task_id,
            poll_interval=self.poke_interval,
            deadline=state.started_at + self.timeout,
            deadline_source=f"sensor timeout of {self.timeout:g} s",
            retry_delay=self.runway_retry_delay,
        )

    def _wait_started(self, context: Context) -> float:
        """When this wait began, Unix epoch seconds; the 404 grace and the sensor's timeout count from it.

        In ``reschedule`` mode the first try's start, which Airflow keeps (the sensor object is new at
        every poke); else this try's start.
        """
        ti = context.get("ti")
        first = None
        if ti is not None and self.reschedule:
            if AIRFLOW_V_3_0_PLUS:
                first = ti.get_first_reschedule_date(context)
            else:  # what BaseSensorOperator.execute reads on Airflow 2.11
                base = import_module("airflow.sensors.base")
                first_try = (ti.max_tries or 0) - (self.retries or 0) + 1
                first = base._orig_start_date(
                    dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index, try_number=first_try
                )
        started = _epoch(first) or _epoch(getattr(ti, "start_date", None))
        return min(started, time.time()) if started is not None else time.time()

    def _conclude(self, decision: WaitDecision) -> dict[str, Any]:
        """The return value of a finished wait, or the failure it ended with."""
        if decision.outcome is Outcome.DONE and decision.task is not None:
            return decision.task.to_dict()
        if decision.outcome is Outcome.TIMED_OUT:
            raise AirflowSensorTimeout(decision.message)
        if decision.retryable:
            raise RunwayWaitError(decision.message)
        raise AirflowFailException(decision.message)

    def execute(self, context: Context) -> Any:
        self._wait_state = None  # one sensor object may run several tries in one process (dag.test)
        if not self.deferrable:
            return super().execute(context)
        with self._soft_fail_skips():
            first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self._defer(self._wait_state or WaitState(started_at=time.time()))
        return None

    def _defer(self, state: WaitState) -> None:
        policy = self._policy(state)
        self.defer(
            trigger=RunwayTaskTrigger(
                task_id=self.runway_task_id,
                family=self.family.value,
                runway_conn_id=self.runway_conn_id,
                poll_interval=self.poke_interval,
                end_time=policy.deadline,
                retry_limit=self.runway_retry_limit,
                retry_delay=self.runway_retry_delay,
                deadline_source=policy.deadline_source,
                wait_state=state.to_dict(),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Return the task on success; raise on failure, timeout or error (``soft_fail`` skips)."""
        with self._soft_fail_skips():
            return self._conclude(WaitDecision.from_event(event, self.runway_task_id))

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
