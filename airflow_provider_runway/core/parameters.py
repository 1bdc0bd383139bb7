"""Operator parameters before and after rendering: stand-ins for templated values, and what rendering does.

Airflow-free: an operator checks its literal parameters at DAG parse time against stand-ins for the
templated ones, and undoes string rendering (``None`` rendered as ``"None"``) before the real check.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_provider_runway.core.errors import RunwayParameterError
from airflow_provider_runway.core.models import DEFAULT_DURATIONS, ValidationLimits

#: Limits used at DAG parse time, when the connection (which may narrow them) is not read yet:
#: the longest documented prompt limit and every documented duration.
PARSE_TIME_LIMITS = ValidationLimits(max_prompt_length=2048, durations=DEFAULT_DURATIONS)
#: Stand-ins for templated values during parse-time validation, valid for every request type.
PLACEHOLDERS: dict[str, Any] = {
    "prompt": "templated prompt",
    "image_url": "https://templated.invalid/image.png",
    "video_url": "https://templated.invalid/video.mp4",
    "reference_image": "https://templated.invalid/reference.png",
    "callback_url": "https://templated.invalid/callback",
    "source_task_id": "templated-task-id",
    "source_quality": None,
    "duration": 5,
    "quality": "720p",
    "aspect_ratio": "16:9",
    "water_mark": "",
    "seed": None,
    "upload_cn": False,
    "expand_prompt": None,
}


def is_templated(value: Any) -> bool:
    """Whether ``value`` is only known at run time: a Jinja string or an XComArg-like reference."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return callable(getattr(value, "resolve", None))


def to_seconds(value: float | timedelta, name: str) -> float:
    """Seconds from a number or a timedelta; must be positive."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise RunwayParameterError(name, value, "must be a positive number of seconds or a timedelta")
    return float(seconds)


def coerce_rendered(name: str, value: Any) -> Any:
    """Undo what string rendering does to optional and boolean values (``None`` -> ``"None"``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name in ("upload_cn", "expand_prompt") and text.lower() in ("true", "false"):
        return text.lower() == "true"
    optional = (
        "seed",
        "image_url",
        "reference_image",
        "callback_url",
        "aspect_ratio",
        "source_quality",
        "expand_prompt",
    )
    if name in optional and text in ("", "None"):
        return None
    return value
