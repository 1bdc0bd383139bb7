"""Creating again while KIE has no capacity: the Runway operators' wait for a generation slot.

A create refused for the account's concurrency limit (or still rate-limited after the HTTP retries), and a
task KIE accepted and then failed with the concurrency message before charging, cost nothing: the task is
created again with back-off, inside the same try, until KIE takes it or the try's deadline passes. When to
create again and how long to pause is :mod:`airflow_provider_runway.core.retry`'s decision; this is the glue.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from airflow_provider_runway.core.errors import RunwayError
from airflow_provider_runway.core.results import RunwayTask
from airflow_provider_runway.core.retry import capacity_delay, waits_for_capacity
from airflow_provider_runway.core.wait import deadline_for
from airflow_provider_runway.exceptions import RunwayWaitError
from airflow_provider_runway.operators._resumable import remember

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_runway.operators.runway import RunwayBaseOperator


def try_started_at(op: RunwayBaseOperator, context: Context) -> float | None:
    """When this Airflow try started (``execution_timeout`` counts from it)."""
    start_date = getattr(context["ti"], "start_date", None)
    return start_date.timestamp() if isinstance(start_date, datetime) else op._try_started


def wait_for_capacity(op: RunwayBaseOperator, context: Context, reason: str, retry_after: float | None = None) -> None:
    """Pause before creating again while KIE cannot take the task (concurrency or rate limit).

    The pause grows exponentially from ``poll_interval``, at least ``retry_after`` (see
    ``core.retry.capacity_delay``). The wait
    ends with a :class:`RunwayWaitError` (an Airflow retry may create the task) once ``timeout``
    from its start, or the task's ``execution_timeout``, has passed. Logged once per wait.
    """
    now = time.time()
    if op._capacity_since is None:
        op._capacity_since = now
        op.log.warning(
            "KIE cannot take the task now (%s); nothing was created or charged. "
            "Creating it again with back-off until KIE accepts it",
            reason,
        )
    limit = op.execution_timeout.total_seconds() if op.execution_timeout is not None else None
    deadline, source = deadline_for(
        op._capacity_since, op.timeout, started_at=try_started_at(op, context), execution_timeout=limit
    )
    if now >= deadline:
        raise RunwayWaitError(
            f"KIE did not accept the task within the {source} "
            f"({op._capacity_attempts + 1} attempts over {now - op._capacity_since:.1f} s; last: {reason}). "
            "Nothing was created or charged; a retry tries again."
        )
    op._capacity_attempts += 1
    time.sleep(capacity_delay(op._capacity_attempts, op.poll_interval, deadline - now, retry_after))


def create_again(op: RunwayBaseOperator, context: Context, task: RunwayTask) -> str:
    """Replace ``task``, which KIE failed for the concurrency limit before charging, by a new task."""
    wait_for_capacity(op, context, f"Runway task {task.task_id} failed: {task.fail_message}")
    task_id = op.submit_job(context)
    if op.durable:
        remember(context, op.external_id_key, task_id)
    op._announce(context, task_id)
    return task_id


def settled(op: RunwayBaseOperator, context: Context, task_id: str) -> str:
    """The task to hand to the triggerer: ``task_id``, or its replacement if KIE failed it at once for the limit.

    KIE fails a create over the concurrency limit right away. One read of a task created in this
    try lets the worker that created it create it again, instead of a deferral whose trigger fires
    at once (which Airflow 3.3 may fail: apache/airflow#67287). A failed read defers as usual.
    """
    if not op._created:
        return task_id
    while True:
        try:
            task = op.hook.get_task(task_id, op.family)
        except RunwayError:
            return task_id
        op._last_read_at = time.time()
        if not waits_for_capacity(task):
            return task_id
        task_id = create_again(op, context, task)
