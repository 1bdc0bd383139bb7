"""Deferring a Runway operator's wait to the triggerer, and finishing it.

The deadline handed to the trigger is the earlier of ``timeout`` and ``execution_timeout``; the trigger ends
the task itself on success when nothing is left for a worker, else ``execute_complete`` finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_runway.core.retry import waits_for_capacity
from airflow_provider_runway.core.wait import WaitDecision, WaitState, deadline_for
from airflow_provider_runway.operators._capacity import CapacityWait
from airflow_provider_runway.triggers.runway import RunwayTaskTrigger
from airflow_provider_runway.triggers.task_end import task_end_supported, worker_end_reasons
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, storable_result

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_runway.operators.runway import RunwayBaseOperator

#: Most seconds a deferred wait ends before ``execution_timeout`` on Airflow 2 (see ``_defer``).
EXECUTION_TIMEOUT_RESERVE = 5.0


def defer(op: RunwayBaseOperator, context: Context, task_id: str) -> None:
    ti = context["ti"]
    try_number = getattr(ti, "try_number", None)
    started = op._try_started_at(context)
    limit = op.execution_timeout.total_seconds() if op.execution_timeout is not None else None
    end_time, source = deadline_for(
        time.time(),
        op.timeout,
        started_at=started,
        execution_timeout=limit,
        # Airflow 2 resumes the task with what is left of execution_timeout and fails it at once
        # when nothing is: the trigger ends a little earlier so execute_complete can say why.
        reserve=0.0 if AIRFLOW_V_3_0_PLUS or limit is None else min(EXECUTION_TIMEOUT_RESERVE, limit / 10),
    )
    op.defer(
        trigger=RunwayTaskTrigger(
            task_id=task_id,
            family=op.family.value,
            runway_conn_id=op.runway_conn_id,
            poll_interval=op.poll_interval,
            end_time=end_time,
            retry_limit=op.runway_retry_limit,
            retry_delay=op.runway_retry_delay,
            deadline_source=source,
            first_poll_delay=op.first_poll_delay,
            expected_duration=op.expected_duration,
            duration=getattr(op._request, "duration", None),
            quality=getattr(op._request, "quality", None),
            task_end=task_end(op, context),
            wait_state=created_wait_state(op),
        ),
        method_name="execute_complete",
        kwargs=resume_kwargs(op, try_number),
        # The trigger enforces the deadline, execution_timeout included: Airflow's own timeout
        # would end the task without calling execute_complete, so the message would not name
        # the Runway task.
        timeout=None,
    )


def created_wait_state(op: RunwayBaseOperator) -> dict[str, Any] | None:
    """A wait that starts at the creation of a task this try created (and read), so reads follow that clock."""
    if not op._created or op._created_at is None:
        return None
    return WaitState(
        started_at=op._created_at, seen=op._last_read_at is not None, last_read_at=op._last_read_at
    ).to_dict()


def resume_kwargs(op: RunwayBaseOperator, try_number: int | None) -> dict[str, Any] | None:
    """What the resumed try needs: its number, a wait for a slot in progress, the uploaded inputs' URLs."""
    kwargs: dict[str, Any] = {}
    if try_number is not None:
        kwargs["deferred_try"] = try_number
    if op._capacity.waiting:
        kwargs["capacity_since"] = op._capacity.since
        kwargs["capacity_attempts"] = op._capacity.attempts
    if op._uploaded:  # a create after a pause for capacity reuses the uploads
        kwargs["uploaded"] = op._uploaded
    return kwargs or None


def ends_in_triggerer(op: RunwayBaseOperator) -> bool:
    """Whether nothing is left for a worker once the wait succeeded (see ``end_in_triggerer``); logs why not."""
    if not op.end_in_triggerer or not task_end_supported():
        return False
    reasons = (["download_to"] if op.download_to else []) + worker_end_reasons(op)
    if reasons:
        op.log.info("On success this task resumes on a worker, for: %s", ", ".join(reasons))
        return False
    op.log.info("On success this task ends in the triggerer (nothing is left for a worker)")
    return True


def task_end(op: RunwayBaseOperator, context: Context) -> dict[str, Any] | None:
    """What the trigger needs to end the task itself (one plain-JSON value), or None to resume on a worker."""
    if not ends_in_triggerer(op):
        return None
    return {
        "multiple_outputs": op.multiple_outputs,
        "do_xcom_push": op.do_xcom_push,
        "resume_record": resume_record(op, context),
    }


def resume_record(op: RunwayBaseOperator, context: Context) -> str | None:
    """The Variable keeping the Runway task id below Airflow 3.3, which the trigger deletes if it ends the task."""
    if AIRFLOW_V_3_3_PLUS or not op.durable:
        return None
    from airflow_provider_runway.operators._resumable import record_key

    return record_key(context, op.external_id_key)


def finish_deferred(
    op: RunwayBaseOperator,
    context: Context,
    event: Mapping[str, Any],
    deferred_try: int | None = None,
    capacity_since: float | None = None,
    capacity_attempts: int = 0,
) -> dict[str, Any]:
    """Turn the trigger's event into the return value, or into the matching failure.

    A task KIE failed for the concurrency limit is created again after a pause in the triggerer, and the new
    task waited for.
    """
    op._capacity = CapacityWait(capacity_since, capacity_attempts)
    if deferred_try is not None and deferred_try != context["ti"].try_number:
        # Airflow 3.0 resumes the retry of a task whose resumed try failed with that earlier try's
        # event: start this try afresh instead (it attaches to the stored Runway task).
        op.log.info(
            "Try %s was resumed with the event of try %s; starting it afresh",
            context["ti"].try_number,
            deferred_try,
        )
        return op.execute(context)
    resumed_scope = getattr(op, "resumed_scope", None)  # the Variable record below Airflow 3.3
    if resumed_scope is None or not op.durable:
        return storable_result(complete(op, context, event), op.multiple_outputs)
    with resumed_scope(context):
        return storable_result(complete(op, context, event), op.multiple_outputs)


def complete(op: RunwayBaseOperator, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
    op.runway_task_id = str(event.get("task_id") or op.runway_task_id or "")
    decision = WaitDecision.from_event(event, op.runway_task_id)
    if decision.task is not None and waits_for_capacity(decision.task):
        op._pause_for_capacity(context, f"Runway task {decision.task.task_id} failed: {decision.task.fail_message}")
    return op._conclude(context, decision)
