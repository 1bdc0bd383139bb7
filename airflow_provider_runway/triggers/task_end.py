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

So a task ends in the triggerer only with the final success in hand and nothing left for a worker:
:func:`worker_end_reasons` lists what Airflow's own success path (2.11's ``TaskInstance._run_raw_task`` and
``_execute_task_with_callbacks``, 3.x's ``task_runner._run_task_and_map_outcome`` and ``finalize``) would still
do for a task. Failures, timeouts and soft-fail keep resuming on the worker on every version:
``TaskFailedEvent`` ignores retries before Airflow 3.3, and it leaves no exception, message or
``context["exception"]`` for failure callbacks on any version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, storable_result

try:
    from airflow.triggers.base import TaskSuccessEvent, TriggerEvent
except ImportError:  # an Airflow without task-end events
    from airflow.triggers.base import TriggerEvent

    TaskSuccessEvent = None  # type: ignore[assignment,misc]

#: Airflow's ``XCOM_RETURN_KEY``, the same on every version. Not imported: on Airflow 3.0 the compat name
#: resolves to ``airflow.models.xcom``, whose imports (the database layer, the API server's app, aiohttp) cost
#: every task process about a second and a half to parse a DAG that uses the operators.
XCOM_RETURN_KEY = "return_value"

#: ``[core] xcom_backend`` defaults: Airflow 2's, Airflow 3's, and the task SDK's base class itself.
DEFAULT_XCOM_BACKENDS = frozenset(
    {"airflow.models.xcom.BaseXCom", "airflow.sdk.execution_time.xcom.BaseXCom", "airflow.sdk.bases.xcom.BaseXCom"}
)


def task_end_supported() -> bool:
    """Whether the running Airflow lets a trigger end its task (``TaskSuccessEvent`` with ``xcoms``)."""
    return TaskSuccessEvent is not None


def worker_end_reasons(task: Any) -> list[str]:
    """What Airflow would still do at a worker's end of ``task``'s successful try; empty when nothing.

    Read at defer time, on the worker: the task's own settings (outlets, callbacks, execute hooks, a named
    map index, a mapped task downstream) and the deployment's (listeners, a custom XCom backend, a lineage
    backend, a worker state store that is cleared on success). Each reason names what would be skipped.
    """
    reasons = [reason for reason, applies in _task_reasons(task) if applies]
    reasons += [reason for reason, applies in _deployment_reasons() if applies]
    return reasons


def _task_reasons(task: Any) -> list[tuple[str, bool]]:
    return [
        ("outlets (asset events)", bool(getattr(task, "outlets", None))),
        ("on_success_callback", bool(getattr(task, "on_success_callback", None))),
        ("on_execute_callback (runs again on resume)", bool(getattr(task, "on_execute_callback", None))),
        ("pre_execute/post_execute", _has_execute_hooks(task)),
        ("map_index_template (rendered at the end)", getattr(task, "map_index_template", None) is not None),
        ("overwrite_rtif_after_execution", bool(getattr(task, "overwrite_rtif_after_execution", False))),
        ("a mapped task downstream (it needs the result's length)", _has_mapped_dependants(task)),
    ]


def _deployment_reasons() -> list[tuple[str, bool]]:
    return [
        ("listeners (e.g. OpenLineage)", listeners_registered()),
        ("a custom [core] xcom_backend", custom_xcom_backend()),
        ("a [lineage] backend", not AIRFLOW_V_3_0_PLUS and bool(conf.get("lineage", "backend", fallback=""))),
        (
            "a [workers] state_store_backend cleared on success",
            AIRFLOW_V_3_3_PLUS
            and bool(conf.get("workers", "state_store_backend", fallback=""))
            and conf.getboolean("state_store", "clear_on_success", fallback=False),
        ),
    ]


def _has_execute_hooks(task: Any) -> bool:
    """``pre_execute``/``post_execute`` given as arguments or overridden: Airflow runs them around a resume."""
    from airflow.providers.common.compat.sdk import BaseOperator

    given = (
        getattr(task, "_pre_execute_hook", None) is not None or getattr(task, "_post_execute_hook", None) is not None
    )
    cls = type(task)
    overridden = (
        getattr(cls, "pre_execute", BaseOperator.pre_execute) is not BaseOperator.pre_execute
        or getattr(cls, "post_execute", BaseOperator.post_execute) is not BaseOperator.post_execute
    )
    return given or overridden


def _has_mapped_dependants(task: Any) -> bool:
    try:
        return next(iter(task.iter_mapped_dependants()), None) is not None
    except Exception:  # no DAG attached (a bare operator in a test)
        return False


def listeners_registered() -> bool:
    """Whether a listener plugin is registered in this (worker) process, as the task runner would call it."""
    try:
        from airflow.sdk.listener import get_listener_manager  # Airflow 3.3's task runner
    except ImportError:
        from airflow.listeners.listener import get_listener_manager  # type: ignore[assignment]
    return bool(get_listener_manager().has_listeners)


def custom_xcom_backend() -> bool:
    """Whether ``[core] xcom_backend`` names a class other than Airflow's default (the triggerer bypasses it)."""
    configured = conf.get("core", "xcom_backend", fallback="") or ""
    return bool(configured) and configured not in DEFAULT_XCOM_BACKENDS


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


__all__ = ["task_end_event", "task_end_supported", "task_end_xcoms", "worker_end_reasons"]
