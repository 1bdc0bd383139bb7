"""What a Runway operator reports at the worker-side end of a try: usage, outlet-event extra, and lineage.

Three calls from :mod:`airflow_provider_runway.operators.runway`: :func:`report_success` once the result is
in hand (stored files included), :func:`report_remote_failure` before a failed generation fails the task,
and :func:`openlineage_facets` from ``get_openlineage_facets_on_complete`` / ``_on_failure``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset

from airflow_provider_runway.core.errors import RunwayParameterError
from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.core.pricing import (
    PRICE_TABLE_EXTRA,
    RUNWAY_USAGE_XCOM_KEY,
    RunwayUsage,
    price_table,
    usage_of,
)
from airflow_provider_runway.core.results import RunwayTask, TaskFamily
from airflow_provider_runway.openlineage.naming import location_of
from airflow_provider_runway.transfer.uploads import INPUT_FIELDS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_runway.operators.runway import RunwayBaseOperator

#: The model behind each family's endpoints, as KIE markets them (the lineage facet's ``model``).
MODELS = {TaskFamily.RUNWAY: "runway-gen4-turbo", TaskFamily.ALEPH: "runway-aleph"}


@dataclass(frozen=True)
class RunOutcome:
    """How the generation of a try ended, kept by the try for the operator's lineage methods."""

    task: RunwayTask
    usage: RunwayUsage
    result: Mapping[str, Any] | None = None


def report_success(op: RunwayBaseOperator, context: Context, task: RunwayTask, result: Mapping[str, Any]) -> RunOutcome:
    """Push ``runway_usage`` and attach the video's metadata to every asset outlet's event; returns the outcome."""
    usage = _record(op, context, task)
    extra = outlet_extra(task, usage, result)
    outlet_events = context.get("outlet_events")
    for outlet in op.outlets or ():
        if outlet_events is not None and isinstance(outlet, Asset):  # a Dataset on Airflow 2
            outlet_events[outlet].extra.update(extra)
    return RunOutcome(task, usage, result)


def report_remote_failure(op: RunwayBaseOperator, context: Context, task: RunwayTask) -> RunOutcome:
    """Push ``runway_usage`` for a generation KIE failed (charged, unless it failed for the concurrency limit)."""
    return RunOutcome(task, _record(op, context, task))


def _record(op: RunwayBaseOperator, context: Context, task: RunwayTask) -> RunwayUsage:
    duration, quality = getattr(op, "duration", None), getattr(op, "quality", None)
    usage = usage_of(task, duration=duration, quality=quality, prices=_prices(op))
    context["ti"].xcom_push(key=RUNWAY_USAGE_XCOM_KEY, value=usage.to_dict())
    op.log.info(
        "Runway task %s: %s credits (%s)",
        task.task_id,
        "unknown" if usage.credits is None else f"{usage.credits:g}",
        ("charged" if usage.charged else "not charged") + (f"; {usage.reason}" if usage.reason else ""),
    )
    return usage


def _prices(op: RunwayBaseOperator) -> dict[str, float | None]:
    """The connection's price table; KIE's when its ``price_table`` extra is invalid (the video is paid already)."""
    try:
        return op.hook.get_price_table()
    except RunwayParameterError as err:
        op.log.warning("Ignoring the connection extra %s: %s", PRICE_TABLE_EXTRA, err)
        return price_table()


def outlet_extra(task: RunwayTask, usage: RunwayUsage, result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe ``extra`` of an outlet event: which video arrived, where it is stored, how long it is."""
    extra: dict[str, Any] = {
        "runway_task_id": task.task_id,
        "family": usage.family,
        "duration": usage.duration,
        "quality": usage.quality,
        "video_url": redact_url(task.video_url) if task.video_url else None,
        "credits": usage.credits,
    }
    if result.get("video_path"):
        extra["video_path"] = str(result["video_path"])
        extra["video_size"] = result.get("video_size")
    return extra


def input_locations(op: RunwayBaseOperator) -> list[str]:
    """The operator's input files or URLs (query strings dropped): the rendered values of its input fields."""
    locations = []
    for name in INPUT_FIELDS.keys() & set(op.request_fields):
        location = location_of(getattr(op, name, None))
        if location:
            locations.append(redact_url(location) if location.startswith(("http://", "https://")) else location)
    return sorted(locations)


def output_locations(outcome: RunOutcome | None) -> list[str]:
    """The stored video, else KIE's video URL without its query string; nothing without a video."""
    if outcome is None or outcome.result is None:
        return []
    if outcome.result.get("video_path"):
        return [str(outcome.result["video_path"])]
    return [redact_url(outcome.task.video_url)] if outcome.task.video_url else []


def openlineage_facets(op: RunwayBaseOperator, outcome: RunOutcome | None) -> Any:
    """The ``OperatorLineage`` of this try (``outcome``: how its generation ended): inputs, video, Runway facet."""
    from airflow_provider_runway.openlineage.facets import operator_lineage

    facet = None
    if outcome is not None:
        usage = outcome.usage
        facet = {
            "runwayTaskId": outcome.task.task_id,
            "family": usage.family,
            "model": MODELS[outcome.task.family],
            "duration": usage.duration,
            "quality": usage.quality,
            "credits": usage.credits,
            "charged": usage.charged,
            "state": outcome.task.status.value,
        }
    elif op.runway_task_id:
        facet = {"runwayTaskId": op.runway_task_id, "family": op.family.value, "model": MODELS[op.family]}
    return operator_lineage(input_locations(op), output_locations(outcome), facet)


__all__ = [
    "RUNWAY_USAGE_XCOM_KEY",
    "RunOutcome",
    "input_locations",
    "openlineage_facets",
    "outlet_extra",
    "report_remote_failure",
    "report_success",
]
