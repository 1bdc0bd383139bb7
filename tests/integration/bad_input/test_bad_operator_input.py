"""Invalid operator configurations fail early, name the parameter, and never reach the API.

Static mistakes fail when the DAG file is parsed (the operator's constructor); templated values
that render to something invalid fail at execute time with ``AirflowFailException`` (no Airflow
retry can fix them) before any HTTP request. The simulator counts every request it receives, so
"nothing was created" is checked on the wire, not assumed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_runway.core import RunwayParameterError
from airflow_provider_runway.operators.runway import (
    RunwayAlephOperator,
    RunwayBaseOperator,
    RunwayExtendOperator,
    RunwayGenerateOperator,
)
from airflow_provider_runway.simulator import SimulatorThread

Gen, Ext, Aleph = RunwayGenerateOperator, RunwayExtendOperator, RunwayAlephOperator
VIDEO = "https://cdn.example.com/in.mp4"
SOURCE = "0d9a3c4e-1b2f-4c5d-8e6f-7a8b9c0d1e2f"
#: Longest message accepted for a parameter error: the bad value is quoted, but shortened.
MAX_MESSAGE_LENGTH = 400

# (id, operator, keyword arguments, parameter the message must name)
STATIC_CASES: list[tuple[str, type[RunwayBaseOperator], dict[str, Any], str]] = [
    ("gen-empty-prompt", Gen, {"prompt": ""}, "prompt"),
    ("gen-blank-prompt", Gen, {"prompt": "   \n\t"}, "prompt"),
    ("gen-prompt-not-str", Gen, {"prompt": 12345}, "prompt"),
    ("gen-prompt-none", Gen, {"prompt": None}, "prompt"),
    ("gen-prompt-too-long", Gen, {"prompt": "x" * 5000}, "prompt"),
    ("gen-duration-7", Gen, {"prompt": "a cat", "duration": 7}, "duration"),
    ("gen-duration-bool", Gen, {"prompt": "a cat", "duration": True}, "duration"),
    ("gen-duration-text", Gen, {"prompt": "a cat", "duration": "ten"}, "duration"),
    ("gen-duration-negative", Gen, {"prompt": "a cat", "duration": -5}, "duration"),
    ("gen-quality-4k", Gen, {"prompt": "a cat", "quality": "4k"}, "quality"),
    ("gen-1080p-long", Gen, {"prompt": "a cat", "quality": "1080p", "duration": 10}, "quality"),
    ("gen-aspect-2-1", Gen, {"prompt": "a cat", "aspect_ratio": "2:1"}, "aspect_ratio"),
    ("gen-aspect-21-9-runway", Gen, {"prompt": "a cat", "aspect_ratio": "21:9"}, "aspect_ratio"),
    ("gen-no-aspect-no-image", Gen, {"prompt": "a cat", "aspect_ratio": None}, "aspect_ratio"),
    ("gen-image-ftp", Gen, {"prompt": "a cat", "image_url": "ftp://host/cat.png"}, "image_url"),
    ("gen-image-relative", Gen, {"prompt": "a cat", "image_url": "images/cat.png"}, "image_url"),
    ("gen-image-too-long", Gen, {"prompt": "a cat", "image_url": "https://h/" + "a" * 3000}, "image_url"),
    ("gen-image-space", Gen, {"prompt": "a cat", "image_url": "https://h/a cat.png"}, "image_url"),
    ("gen-water-mark-int", Gen, {"prompt": "a cat", "water_mark": 5}, "water_mark"),
    ("gen-water-mark-long", Gen, {"prompt": "a cat", "water_mark": "w" * 101}, "water_mark"),
    ("gen-callback-js", Gen, {"prompt": "a cat", "callback_url": "javascript:alert(1)"}, "callback_url"),
    ("gen-seed-negative", Gen, {"prompt": "a cat", "seed": -1}, "seed"),
    ("gen-seed-text", Gen, {"prompt": "a cat", "seed": "lucky"}, "seed"),
    ("gen-seed-float", Gen, {"prompt": "a cat", "seed": 1.5}, "seed"),
    ("gen-poll-zero", Gen, {"prompt": "a cat", "poll_interval": 0}, "poll_interval"),
    ("gen-timeout-negative", Gen, {"prompt": "a cat", "timeout": -5}, "timeout"),
    ("gen-timeout-zero-delta", Gen, {"prompt": "a cat", "timeout": datetime.timedelta(0)}, "timeout"),
    ("ext-empty-source", Ext, {"source_task_id": "", "prompt": "more"}, "source_task_id"),
    ("ext-source-space", Ext, {"source_task_id": "abc def", "prompt": "more"}, "source_task_id"),
    ("ext-source-too-long", Ext, {"source_task_id": "t" * 129, "prompt": "more"}, "source_task_id"),
    ("ext-source-not-str", Ext, {"source_task_id": 42, "prompt": "more"}, "source_task_id"),
    ("ext-prompt-none", Ext, {"source_task_id": SOURCE, "prompt": None}, "prompt"),
    ("ext-quality-480p", Ext, {"source_task_id": SOURCE, "prompt": "more", "quality": "480p"}, "quality"),
    ("aleph-no-video", Aleph, {"prompt": "make it snow", "video_url": ""}, "video_url"),
    ("aleph-video-file", Aleph, {"prompt": "make it snow", "video_url": "file:///etc/passwd"}, "video_url"),
    ("aleph-aspect", Aleph, {"prompt": "make it snow", "video_url": VIDEO, "aspect_ratio": "5:4"}, "aspect_ratio"),
    ("aleph-upload-cn-str", Aleph, {"prompt": "make it snow", "video_url": VIDEO, "upload_cn": "yes"}, "upload_cn"),
    (
        "aleph-ref-image",
        Aleph,
        {"prompt": "make it snow", "video_url": VIDEO, "reference_image": "nope"},
        "reference_image",
    ),
    ("aleph-seed-huge", Aleph, {"prompt": "make it snow", "video_url": VIDEO, "seed": 10**12}, "seed"),
    ("aleph-empty-prompt", Aleph, {"prompt": "", "video_url": VIDEO}, "prompt"),
]

# (id, operator, keyword arguments with templates, params they render from, parameter to name, connection extra)
TEMPLATED_CASES: list[tuple[str, type[RunwayBaseOperator], dict[str, Any], dict[str, Any], str, dict[str, Any]]] = [
    ("tpl-prompt-empty", Gen, {"prompt": "{{ params.v }}"}, {"v": ""}, "prompt", {}),
    ("tpl-prompt-blank", Gen, {"prompt": "{{ params.v }}"}, {"v": "    "}, "prompt", {}),
    ("tpl-prompt-1801", Gen, {"prompt": "{{ params.v }}"}, {"v": "p" * 1801}, "prompt", {}),
    ("lit-prompt-over-conn-limit", Gen, {"prompt": "q" * 150}, {}, "prompt", {"max_prompt_length": 100}),
    (
        "lit-duration-not-allowed",
        Gen,
        {"prompt": "a cat", "duration": 8},
        {},
        "duration",
        {"allowed_durations": "5,10"},
    ),
    ("tpl-duration-7", Gen, {"prompt": "a cat", "duration": "{{ params.v }}"}, {"v": 7}, "duration", {}),
    ("tpl-quality-2160p", Gen, {"prompt": "a cat", "quality": "{{ params.v }}"}, {"v": "2160p"}, "quality", {}),
    (
        "tpl-1080p-with-10s",
        Gen,
        {"prompt": "a cat", "quality": "1080p", "duration": "{{ params.v }}"},
        {"v": 10},
        "quality",
        {},
    ),
    ("tpl-aspect-wide", Gen, {"prompt": "a cat", "aspect_ratio": "{{ params.v }}"}, {"v": "wide"}, "aspect_ratio", {}),
    ("tpl-aspect-none", Gen, {"prompt": "a cat", "aspect_ratio": "{{ params.v }}"}, {"v": None}, "aspect_ratio", {}),
    ("tpl-image-js", Gen, {"prompt": "a cat", "image_url": "{{ params.v }}"}, {"v": "javascript:x"}, "image_url", {}),
    (
        "tpl-callback-ftp",
        Gen,
        {"prompt": "a cat", "callback_url": "{{ params.v }}"},
        {"v": "ftp://h/cb"},
        "callback_url",
        {},
    ),
    ("tpl-seed-text", Gen, {"prompt": "a cat", "seed": "{{ params.v }}"}, {"v": "lucky"}, "seed", {}),
    (
        "tpl-water-mark-long",
        Gen,
        {"prompt": "a cat", "water_mark": "{{ params.v }}"},
        {"v": "w" * 150},
        "water_mark",
        {},
    ),
    ("tpl-source-empty", Ext, {"source_task_id": "{{ params.v }}", "prompt": "more"}, {"v": ""}, "source_task_id", {}),
    (
        "tpl-source-space",
        Ext,
        {"source_task_id": "{{ params.v }}", "prompt": "more"},
        {"v": "two words"},
        "source_task_id",
        {},
    ),
    ("tpl-ext-prompt-empty", Ext, {"source_task_id": SOURCE, "prompt": "{{ params.v }}"}, {"v": ""}, "prompt", {}),
    ("tpl-video-empty", Aleph, {"prompt": "snow", "video_url": "{{ params.v }}"}, {"v": ""}, "video_url", {}),
    (
        "tpl-video-data",
        Aleph,
        {"prompt": "snow", "video_url": "{{ params.v }}"},
        {"v": "data:video/mp4,AA"},
        "video_url",
        {},
    ),
    (
        "tpl-upload-cn-maybe",
        Aleph,
        {"prompt": "snow", "video_url": VIDEO, "upload_cn": "{{ params.v }}"},
        {"v": "maybe"},
        "upload_cn",
        {},
    ),
    (
        "tpl-ref-image-relative",
        Aleph,
        {"prompt": "snow", "video_url": VIDEO, "reference_image": "{{ params.v }}"},
        {"v": "ref.png"},
        "reference_image",
        {},
    ),
]


class _StateStore:
    """Stand-in for ``task_state_store``: records whether anything was stored."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value


def _context(params: dict[str, Any]) -> dict[str, Any]:
    ti = mock.MagicMock(name="ti")
    ti.stats_tags = {}
    return {"params": params, "ti": ti, "task_state_store": _StateStore()}


def test_the_suite_covers_at_least_forty_configurations() -> None:
    assert len(STATIC_CASES) + len(TEMPLATED_CASES) >= 40
    ids = [case[0] for case in STATIC_CASES] + [case[0] for case in TEMPLATED_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operator", "kwargs", "param"), [c[1:] for c in STATIC_CASES], ids=[c[0] for c in STATIC_CASES]
)
def test_static_mistake_fails_at_parse_time_naming_the_parameter(
    sim: SimulatorThread, operator: type[RunwayBaseOperator], kwargs: dict[str, Any], param: str
) -> None:
    with (
        DAG("bad_input_static", schedule=None, start_date=datetime.datetime(2024, 1, 1)),
        pytest.raises(RunwayParameterError) as raised,
    ):
        operator(task_id="bad", **kwargs)
    assert raised.value.field == param
    message = str(raised.value)
    assert message.startswith(f"Invalid {param}=")
    assert len(message) <= MAX_MESSAGE_LENGTH
    counters = sim.counters()
    assert counters["requests_total"] == 0
    assert counters["tasks_total"] == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operator", "kwargs", "params", "param", "extra"),
    [c[1:] for c in TEMPLATED_CASES],
    ids=[c[0] for c in TEMPLATED_CASES],
)
def test_rendered_mistake_fails_at_execute_without_any_request(
    sim: SimulatorThread,
    connection_extra: Callable[..., None],
    operator: type[RunwayBaseOperator],
    kwargs: dict[str, Any],
    params: dict[str, Any],
    param: str,
    extra: dict[str, Any],
) -> None:
    connection_extra(**extra)
    with DAG("bad_input_rendered", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
        op = operator(task_id="bad_rendered", poll_interval=0.05, **kwargs)  # valid when parsed
    context = _context(params)
    op.render_template_fields(context)
    with pytest.raises(AirflowFailException) as raised:
        op.execute(context)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"Invalid {param}=" in message
    assert "no Runway task was created" in message
    assert len(message) <= MAX_MESSAGE_LENGTH
    assert context["task_state_store"].data == {}
    context["ti"].xcom_push.assert_not_called()
    counters = sim.counters()
    assert counters["requests_total"] == 0
    assert counters["tasks_total"] == 0


@pytest.mark.integration
def test_a_valid_configuration_does_reach_the_simulator(sim: SimulatorThread) -> None:
    """The control case: the same harness with a valid value creates exactly one task."""
    with DAG("bad_input_control", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
        op = Gen(task_id="good", prompt="{{ params.v }}", poll_interval=0.05, timeout=30)
    context = _context({"v": "a cat on a skateboard"})
    op.render_template_fields(context)
    result = op.execute(context)  # type: ignore[arg-type]
    assert result["state"] == "succeeded"
    counters = sim.counters()
    assert counters["requests"].get("generate") == 1
    assert counters["tasks_total"] == 1
