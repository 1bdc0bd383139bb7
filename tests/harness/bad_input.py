"""Bad operator input: the case tables (static and templated) and the fault table's bad-input row."""

from __future__ import annotations

import datetime
import time
from datetime import timedelta
from typing import Any

from tests.harness.faults import Harness, ScenarioResult
from tests.harness.operators import POLL_INTERVAL, fresh_contexts

#: Operator kinds of the bad-input cases (see :func:`bad_input_operator`).
Gen, Ext, Aleph = "generate", "extend", "aleph"
BAD_VIDEO = "https://cdn.example.com/in.mp4"
BAD_SOURCE = "0d9a3c4e-1b2f-4c5d-8e6f-7a8b9c0d1e2f"
#: Longest message accepted for a parameter error: the bad value is quoted, but shortened.
MAX_PARAMETER_MESSAGE = 400
BAD_INPUT_ROW = "bad input: invalid operator configurations"
#: The template of the templated cases: each renders its ``params.v``.
T = "{{ params.v }}"

# (id, operator, keyword arguments, parameter the message must name)
BAD_STATIC_CASES: list[tuple[str, str, dict[str, Any], str]] = [
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
    ("gen-timeout-zero-delta", Gen, {"prompt": "a cat", "timeout": timedelta(0)}, "timeout"),
    ("ext-empty-source", Ext, {"source_task_id": "", "prompt": "more"}, "source_task_id"),
    ("ext-source-space", Ext, {"source_task_id": "abc def", "prompt": "more"}, "source_task_id"),
    ("ext-source-too-long", Ext, {"source_task_id": "t" * 129, "prompt": "more"}, "source_task_id"),
    ("ext-source-not-str", Ext, {"source_task_id": 42, "prompt": "more"}, "source_task_id"),
    ("ext-prompt-none", Ext, {"source_task_id": BAD_SOURCE, "prompt": None}, "prompt"),
    ("ext-quality-480p", Ext, {"source_task_id": BAD_SOURCE, "prompt": "more", "quality": "480p"}, "quality"),
    ("aleph-no-video", Aleph, {"prompt": "make it snow", "video_url": ""}, "video_url"),
    ("aleph-video-sftp", Aleph, {"prompt": "make it snow", "video_url": "sftp://host/clip.mp4"}, "video_url"),
    ("aleph-aspect", Aleph, {"prompt": "make it snow", "video_url": BAD_VIDEO, "aspect_ratio": "5:4"}, "aspect_ratio"),
    ("aleph-upload-cn-str", Aleph, {"prompt": "make it snow", "video_url": BAD_VIDEO, "upload_cn": "yes"}, "upload_cn"),
    (
        "aleph-ref-image",
        Aleph,
        {"prompt": "make it snow", "video_url": BAD_VIDEO, "reference_image": "nope"},
        "reference_image",
    ),
    ("aleph-seed-huge", Aleph, {"prompt": "make it snow", "video_url": BAD_VIDEO, "seed": 10**12}, "seed"),
    ("aleph-empty-prompt", Aleph, {"prompt": "", "video_url": BAD_VIDEO}, "prompt"),
]

# (id, operator, keyword arguments with templates, params they render from, parameter to name, connection extra)
BAD_TEMPLATED_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str, dict[str, Any]]] = [
    ("tpl-prompt-empty", Gen, {"prompt": T}, {"v": ""}, "prompt", {}),
    ("tpl-prompt-blank", Gen, {"prompt": T}, {"v": "    "}, "prompt", {}),
    ("tpl-prompt-1801", Gen, {"prompt": T}, {"v": "p" * 1801}, "prompt", {}),
    ("lit-prompt-over-conn-limit", Gen, {"prompt": "q" * 150}, {}, "prompt", {"max_prompt_length": 100}),
    (
        "lit-duration-not-allowed",
        Gen,
        {"prompt": "a cat", "duration": 8},
        {},
        "duration",
        {"allowed_durations": "5,10"},
    ),
    ("tpl-duration-7", Gen, {"prompt": "a cat", "duration": T}, {"v": 7}, "duration", {}),
    ("tpl-quality-2160p", Gen, {"prompt": "a cat", "quality": T}, {"v": "2160p"}, "quality", {}),
    ("tpl-1080p-with-10s", Gen, {"prompt": "a cat", "quality": "1080p", "duration": T}, {"v": 10}, "quality", {}),
    ("tpl-aspect-wide", Gen, {"prompt": "a cat", "aspect_ratio": T}, {"v": "wide"}, "aspect_ratio", {}),
    ("tpl-aspect-none", Gen, {"prompt": "a cat", "aspect_ratio": T}, {"v": None}, "aspect_ratio", {}),
    ("tpl-image-js", Gen, {"prompt": "a cat", "image_url": T}, {"v": "javascript:x"}, "image_url", {}),
    ("tpl-callback-ftp", Gen, {"prompt": "a cat", "callback_url": T}, {"v": "ftp://h/cb"}, "callback_url", {}),
    ("tpl-seed-text", Gen, {"prompt": "a cat", "seed": T}, {"v": "lucky"}, "seed", {}),
    ("tpl-water-mark-long", Gen, {"prompt": "a cat", "water_mark": T}, {"v": "w" * 150}, "water_mark", {}),
    ("tpl-source-empty", Ext, {"source_task_id": T, "prompt": "more"}, {"v": ""}, "source_task_id", {}),
    ("tpl-source-space", Ext, {"source_task_id": T, "prompt": "more"}, {"v": "two words"}, "source_task_id", {}),
    ("tpl-ext-prompt-empty", Ext, {"source_task_id": BAD_SOURCE, "prompt": T}, {"v": ""}, "prompt", {}),
    ("tpl-video-empty", Aleph, {"prompt": "snow", "video_url": T}, {"v": ""}, "video_url", {}),
    ("tpl-video-data", Aleph, {"prompt": "snow", "video_url": T}, {"v": "data:video/mp4,AA"}, "video_url", {}),
    (
        "tpl-upload-cn-maybe",
        Aleph,
        {"prompt": "snow", "video_url": BAD_VIDEO, "upload_cn": T},
        {"v": "maybe"},
        "upload_cn",
        {},
    ),
    (
        "tpl-ref-image-relative",
        Aleph,
        {"prompt": "snow", "video_url": BAD_VIDEO, "reference_image": T},
        {"v": "ref.png"},
        "reference_image",
        {},
    ),
]


def bad_input_operator(kind: str) -> Any:
    """The operator class of a bad-input case kind."""
    from airflow_provider_runway.operators.runway import (
        RunwayAlephOperator,
        RunwayExtendOperator,
        RunwayGenerateOperator,
    )

    return {Gen: RunwayGenerateOperator, Ext: RunwayExtendOperator, Aleph: RunwayAlephOperator}[kind]


def _bad_input_outcome(kind: str, kwargs: dict[str, Any], params: dict[str, Any], param: str) -> str | None:
    """Build (and, for templated cases, render and execute) one bad configuration; ``None`` when it failed right."""
    from airflow.providers.common.compat.sdk import DAG, AirflowFailException

    from airflow_provider_runway.core import RunwayParameterError

    try:
        with DAG("bad_input_row", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
            op = bad_input_operator(kind)(task_id="bad", **{"poll_interval": POLL_INTERVAL, **kwargs})
        context = fresh_contexts(1)[0]
        context["params"] = params
        op.render_template_fields(context)
        op.execute(context)
    except RunwayParameterError as error:
        ok = error.field == param and len(str(error)) <= MAX_PARAMETER_MESSAGE
        return None if ok and not params else f"{param}: {error}"
    except AirflowFailException as error:
        ok = f"Invalid {param}=" in str(error) and len(str(error)) <= MAX_PARAMETER_MESSAGE
        return None if ok else f"{param}: {error}"
    except Exception as error:
        return f"{param}: {type(error).__name__}: {error}"
    return f"{param}: accepted"


def bad_input_row(h: Harness) -> ScenarioResult:
    """Every bad-input case must fail naming its parameter, with zero requests on the simulator."""
    result = ScenarioResult(BAD_INPUT_ROW, tasks=len(BAD_STATIC_CASES) + len(BAD_TEMPLATED_CASES))
    h.fresh()
    started = time.monotonic()
    cases: list[tuple[str, dict[str, Any], dict[str, Any], str, dict[str, Any]]]
    cases = [(kind, kwargs, {}, param, {}) for _, kind, kwargs, param in BAD_STATIC_CASES]
    cases += [case[1:] for case in BAD_TEMPLATED_CASES]
    with h.watch.installed():
        for kind, kwargs, params, param, extra in cases:
            h.connect("runway_default", h.sim.url, **extra)
            problem = _bad_input_outcome(kind, kwargs, params, param)
            if problem is None:
                result.failed_as_expected += 1
            else:
                result.problems.append(problem[:200])
    h.connect("runway_default", h.sim.url)
    result.seconds = time.monotonic() - started
    result.creations, result.expected_creations = h.creations(), 0
    h.bound(result, "generate", 0, exact=True)
    if result.requests:
        result.problems.append(f"{result.requests} requests reached the simulator; none expected")
    result.request_bound = "all endpoints=0"
    result.keys_leaked = h.watch.leaks()
    return result
