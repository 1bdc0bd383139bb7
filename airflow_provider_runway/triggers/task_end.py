"""Ending a deferred task in the triggerer, where the running Airflow can.

Airflow's task-end events (``TaskSuccessEvent`` in ``airflow.triggers.base``, Airflow 2.10+ and every 3.x)
let a trigger finish its task without resuming it on a worker: the triggerer sets the task instance's
state, clears its trigger and pushes the event's ``xcoms`` to the metadata database, and the scheduler
never queues ``execute_complete``. That saves a worker slot, a task process start and a scheduler round
trip per task, but also skips everything a worker resume does besides returning the result:

* ``on_success_callback``: the triggerer files a success callback request that Airflow 3's DAG processor
  discards (it runs failure callbacks only), and Airflow 2.11 only reads with a standalone DAG processor;
* listeners (``on_task_instance_success``, OpenLineage) and a custom XCom backend (the triggerer writes the
  XComs to the database itself);
* the length record of a result that a downstream task maps over.

So a task should end in the triggerer only with the final success in hand and nothing left for a worker
(no ``download_to``, no success callback, no mapped downstream task). Failures, timeouts and soft-fail
keep resuming on the worker on every version: ``TaskFailedEvent`` ignores retries before Airflow 3.3, and
it leaves no exception, message or ``context["exception"]`` for failure callbacks on any version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_runway.version_compat import storable_result

try:
    from airflow.triggers.base import TaskSuccessEvent, TriggerEvent
except ImportError:  # an Airflow without task-end events
    from airflow.triggers.base import TriggerEvent

    TaskSuccessEvent = None  # type: ignore[assignment,misc]

#: Airflow's ``XCOM_RETURN_KEY``, the same on every version. Not imported: on Airflow 3.0 the compat name
#: resolves to ``airflow.models.xcom``, whose imports (the database layer, the API server's app, aiohttp) cost
#: every task process about a second and a half to parse a DAG that uses the operators.
XCOM_RETURN_KEY = "return_value"


def task_end_supported() -> bool:
    """Whether the running Airflow lets a trigger end its task (``TaskSuccessEvent`` with ``xcoms``)."""
    return TaskSuccessEvent is not None


def task_end_xcoms(
    result: dict[str, Any],
    *,
    multiple_outputs: bool,
    do_xcom_push: bool = True,
    extra_xcoms: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The XComs a worker would push for an operator returning ``result``.

    ``return_value`` holds the result; with ``multiple_outputs`` each key is pushed under its own name
    too. On Airflow 3.0 keys whose value is None are left out of both, as the operators return
    them there (:func:`~airflow_provider_runway.version_compat.storable_result`).

    :param result: the operator's return value.
    :param multiple_outputs: the operator's ``multiple_outputs``.
    :param do_xcom_push: the operator's ``do_xcom_push``; without it no return value is pushed.
    :param extra_xcoms: XComs the operator pushes itself with ``ti.xcom_push`` (e.g. the result URL its
        extra link reads), pushed whatever ``do_xcom_push`` says, as a worker would.
    """
    xcoms: dict[str, Any] = dict(extra_xcoms or {})
    if not do_xcom_push:
        return xcoms
    value = storable_result(result, multiple_outputs)
    if multiple_outputs:
        xcoms.update(value)
    # A worker pushes return_value last, so it wins over a result key of the same name.
    xcoms[XCOM_RETURN_KEY] = value
    return xcoms


def task_end_event(
    result: dict[str, Any],
    *,
    multiple_outputs: bool,
    do_xcom_push: bool = True,
    extra_xcoms: Mapping[str, Any] | None = None,
) -> TriggerEvent | None:
    """An event that ends the task successfully in the triggerer, with the XComs a worker resume would push.

    Returns None where the running Airflow has no task-end events: the caller then yields its usual
    :class:`~airflow.triggers.base.TriggerEvent` and the task resumes on a worker.

    :param result: the final result, as ``execute_complete`` would return it (JSON-serializable).
    :param multiple_outputs: the operator's ``multiple_outputs``.
    :param do_xcom_push: the operator's ``do_xcom_push``.
    :param extra_xcoms: XComs the operator pushes itself besides its return value.
    """
    if not isinstance(result, dict):
        raise TypeError(f"result must be a dict (the operator's return value), got {type(result).__name__}")
    if TaskSuccessEvent is None:
        return None
    xcoms = task_end_xcoms(
        result, multiple_outputs=multiple_outputs, do_xcom_push=do_xcom_push, extra_xcoms=extra_xcoms
    )
    return TaskSuccessEvent(xcoms=xcoms or None)


__all__ = ["task_end_event", "task_end_supported", "task_end_xcoms"]
