"""What a Runway or Aleph generation costs, in KIE credits: one price table, and the usage record built from it.

KIE publishes no machine-readable price list. The figures below come from KIE's Runway and Aleph API pages
(docs.kie.ai/runway-api, docs.kie.ai/runway-aleph-api, read 2026-11, summarised in the project's API notes):
"roughly 12-14 credits per second of Runway video; Aleph 50-70 credits per 5 s". KIE's pages as stored here
give no per-quality figure (no KIE price page could be read for this table); 720p is read as the low end (12
credits per second) and 1080p as the high end (14), this project's reading of the range, not a published
split: set ``price_table`` to your account's figures. Aleph's price is a range and the endpoint is
marked discontinued, so it is unknown here (``None``): usage then says ``credits: null`` with the reason,
rather than a guess. The connection extra ``price_table`` overrides any entry, e.g.
``{"price_table": {"runway:720p": 12.5, "aleph": 60}}``.

Charging: KIE deducts the credits when it accepts a create and its pages promise no refund for a generation
that fails afterwards, so a task KIE failed is reported ``charged: true`` (as the bundled simulator does).
The one exception is a task failed at once for the account's concurrency limit: nothing was generated and
no credits were deducted, so it is ``charged: false`` with 0 credits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_runway.core.errors import RunwayParameterError
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus

#: XCom key of the usage record (:meth:`RunwayUsage.to_dict`) pushed at the end of every generation.
RUNWAY_USAGE_XCOM_KEY = "runway_usage"
#: The connection extra whose JSON object overrides entries of :data:`KIE_PRICES`.
PRICE_TABLE_EXTRA = "price_table"

#: Credits per second of Runway video by quality (``runway:<quality>``) and per Aleph edit (``aleph``, which
#: processes the first 5 s of its input). ``None``: KIE publishes no single figure (see the module docstring).
KIE_PRICES: Mapping[str, float | None] = {
    "runway:720p": 12,
    "runway:1080p": 14,
    "aleph": None,
}
#: The seconds of video an Aleph edit produces (KIE processes the first 5 s of the input).
ALEPH_SECONDS = 5


def price_table(overrides: Mapping[str, Any] | str | None = None) -> dict[str, float | None]:
    """:data:`KIE_PRICES` with ``overrides`` (a mapping, or its JSON text) applied.

    :raises RunwayParameterError: an unknown key, or a price that is not a non-negative number or null.
    """
    if overrides is None or overrides == "":
        return dict(KIE_PRICES)
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except ValueError:
            raise RunwayParameterError(PRICE_TABLE_EXTRA, overrides, "must be a JSON object") from None
    if not isinstance(overrides, Mapping):
        raise RunwayParameterError(PRICE_TABLE_EXTRA, overrides, "must be a JSON object")
    allowed = ", ".join(repr(key) for key in KIE_PRICES)
    table = dict(KIE_PRICES)
    for key, price in overrides.items():
        if key not in KIE_PRICES:
            raise RunwayParameterError(PRICE_TABLE_EXTRA, key, f"keys must be among {allowed}")
        valid = price is None or (isinstance(price, (int, float)) and not isinstance(price, bool) and price >= 0)
        if not valid:
            raise RunwayParameterError(
                f"{PRICE_TABLE_EXTRA}[{key!r}]", price, "must be a non-negative number of credits or null"
            )
        table[key] = price
    return table


@dataclass(frozen=True)
class RunwayUsage:
    """What one Runway task cost: the ``runway_usage`` XCom, and the lineage facet's credits.

    ``credits`` is ``None`` when the price is unknown, and ``reason`` then says why.
    """

    task_id: str
    family: str
    duration: int | None
    quality: str | None
    credits: float | None
    charged: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the XCom form)."""
        return {
            "task_id": self.task_id,
            "family": self.family,
            "duration": self.duration,
            "quality": self.quality,
            "credits": self.credits,
            "charged": self.charged,
            "reason": self.reason,
        }


def credits_for(
    family: TaskFamily | str, duration: int | None, quality: str | None, prices: Mapping[str, float | None]
) -> tuple[float | None, str | None]:
    """The credits of one generation and, when they are unknown, the reason."""
    if TaskFamily.coerce(family) is TaskFamily.ALEPH:
        price = prices.get("aleph")
        return (price, None) if price is not None else (None, "KIE publishes no single Aleph price (50-70 per 5 s)")
    key = f"runway:{quality}"
    if key not in prices:
        return None, f"no price for Runway quality {quality!r}"
    if duration is None:
        return None, "the duration of the video is not known (an extension's length is not in its request)"
    per_second = prices[key]
    if per_second is None:
        return None, f"no published price for {key}"
    return round(per_second * duration, 2), None


def usage_of(
    task: RunwayTask,
    *,
    duration: int | str | None,
    quality: str | None,
    prices: Mapping[str, float | None] | None = None,
) -> RunwayUsage:
    """The usage of ``task``, a generation of ``duration`` seconds at ``quality``, by ``prices`` (KIE's by default).

    ``duration`` may be the rendered text of a templated field; one that is not a whole number is unknown.
    """
    duration = _seconds(duration)
    family = task.family
    if family is TaskFamily.ALEPH:
        duration, quality = ALEPH_SECONDS, quality or task.quality
    quality = quality or task.quality
    if task.status is TaskStatus.FAILED and task.failed_for_concurrency:
        return RunwayUsage(
            task.task_id,
            family.value,
            duration,
            quality,
            0,
            charged=False,
            reason="failed for the account's concurrency limit before anything was generated",
        )
    credits, reason = credits_for(family, duration, quality, price_table() if prices is None else prices)
    return RunwayUsage(task.task_id, family.value, duration, quality, credits, charged=True, reason=reason)


def _seconds(value: int | str | None) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


class _PricedHook(Protocol):
    async def aget_price_table(self) -> dict[str, float | None]: ...


async def trigger_prices(hook: _PricedHook) -> dict[str, float | None] | None:
    """The connection's price table for a trigger; ``None`` (KIE's prices) when it cannot be read.

    The generation is paid by then: a bad ``price_table`` extra must not turn a success into a failure.
    """
    try:
        return await hook.aget_price_table()
    except Exception:
        return None


__all__ = [
    "ALEPH_SECONDS",
    "KIE_PRICES",
    "PRICE_TABLE_EXTRA",
    "RUNWAY_USAGE_XCOM_KEY",
    "RunwayUsage",
    "credits_for",
    "price_table",
    "trigger_prices",
    "usage_of",
]
