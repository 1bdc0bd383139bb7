from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_runway.core import (
    AlephRequest,
    ExtendRequest,
    GenerateRequest,
    RunwayParameterError,
    ValidationLimits,
)

OK_URL = "https://example.com/a.png"
LONG = "x" * 1801

# (request class, kwargs, field the error must name, a fragment of what is allowed)
INVALID: list[tuple[type[Any], dict[str, Any], str, str]] = [
    (GenerateRequest, {"prompt": ""}, "prompt", "non-empty"),
    (GenerateRequest, {"prompt": "   "}, "prompt", "non-empty"),
    (GenerateRequest, {"prompt": None}, "prompt", "non-empty"),
    (GenerateRequest, {"prompt": 42}, "prompt", "string"),
    (GenerateRequest, {"prompt": LONG}, "prompt", "at most 1800"),
    (GenerateRequest, {"prompt": "p", "duration": 7}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "duration": 0}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "duration": -5}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "duration": True}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "duration": "ten"}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "duration": 5.5}, "duration", "5, 8, 10"),
    (GenerateRequest, {"prompt": "p", "quality": "4k"}, "quality", "'720p', '1080p'"),
    (GenerateRequest, {"prompt": "p", "quality": "720"}, "quality", "'720p', '1080p'"),
    (GenerateRequest, {"prompt": "p", "quality": None}, "quality", "'720p', '1080p'"),
    (GenerateRequest, {"prompt": "p", "quality": "1080p", "duration": 10}, "quality", "duration=5"),
    (GenerateRequest, {"prompt": "p", "quality": "1080p", "duration": 8}, "quality", "duration=5"),
    (GenerateRequest, {"prompt": "p", "aspect_ratio": "21:9"}, "aspect_ratio", "'16:9'"),
    (GenerateRequest, {"prompt": "p", "aspect_ratio": "16x9"}, "aspect_ratio", "'16:9'"),
    (GenerateRequest, {"prompt": "p", "aspect_ratio": None}, "aspect_ratio", "required for text-to-video"),
    (GenerateRequest, {"prompt": "p", "image_url": "ftp://host/a.png"}, "image_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "image_url": "/local/a.png"}, "image_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "image_url": "https://"}, "image_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "image_url": "https://h/a b.png"}, "image_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "image_url": 3}, "image_url", "URL string"),
    (GenerateRequest, {"prompt": "p", "image_url": "https://h/" + "a" * 3000}, "image_url", "at most"),
    (GenerateRequest, {"prompt": "p", "callback_url": "file:///etc/passwd"}, "callback_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "callback_url": "example.com/hook"}, "callback_url", "http(s)"),
    (GenerateRequest, {"prompt": "p", "water_mark": 5}, "water_mark", "string"),
    (GenerateRequest, {"prompt": "p", "water_mark": "w" * 101}, "water_mark", "at most 100"),
    (GenerateRequest, {"prompt": "p", "seed": -1}, "seed", "integer from 0"),
    (GenerateRequest, {"prompt": "p", "seed": 2**40}, "seed", "integer from 0"),
    (GenerateRequest, {"prompt": "p", "seed": 1.5}, "seed", "integer from 0"),
    (GenerateRequest, {"prompt": "p", "seed": True}, "seed", "integer from 0"),
    (ExtendRequest, {"source_task_id": "", "prompt": "p"}, "source_task_id", "non-empty"),
    (ExtendRequest, {"source_task_id": None, "prompt": "p"}, "source_task_id", "non-empty"),
    (ExtendRequest, {"source_task_id": "a b", "prompt": "p"}, "source_task_id", "no whitespace"),
    (ExtendRequest, {"source_task_id": "t" * 200, "prompt": "p"}, "source_task_id", "at most 128"),
    (ExtendRequest, {"source_task_id": "t1", "prompt": ""}, "prompt", "non-empty"),
    (ExtendRequest, {"source_task_id": "t1", "prompt": "p", "quality": "480p"}, "quality", "'720p'"),
    (ExtendRequest, {"source_task_id": "t1", "prompt": "p", "callback_url": "nope"}, "callback_url", "http(s)"),
    (AlephRequest, {"prompt": "p", "video_url": None}, "video_url", "required"),
    (AlephRequest, {"prompt": "p", "video_url": ""}, "video_url", "required"),
    (AlephRequest, {"prompt": "p", "video_url": "s3://bucket/v.mp4"}, "video_url", "http(s)"),
    (AlephRequest, {"prompt": "", "video_url": OK_URL}, "prompt", "non-empty"),
    (AlephRequest, {"prompt": "p", "video_url": OK_URL, "aspect_ratio": "2:1"}, "aspect_ratio", "'21:9'"),
    (AlephRequest, {"prompt": "p", "video_url": OK_URL, "seed": "abc"}, "seed", "integer"),
    (AlephRequest, {"prompt": "p", "video_url": OK_URL, "reference_image": "img.png"}, "reference_image", "http(s)"),
    (AlephRequest, {"prompt": "p", "video_url": OK_URL, "upload_cn": "yes"}, "upload_cn", "True or False"),
    (AlephRequest, {"prompt": "p", "video_url": OK_URL, "water_mark": ["x"]}, "water_mark", "string"),
]


@pytest.mark.parametrize(("cls", "kwargs", "field", "allowed"), INVALID)
def test_invalid_parameters_name_field_value_and_allowed(
    cls: type[Any], kwargs: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(RunwayParameterError) as excinfo:
        cls(**kwargs)
    error = excinfo.value
    assert isinstance(error, ValueError)
    assert error.field == field
    message = str(error)
    assert message.startswith(f"Invalid {field}=")
    assert allowed in message


def test_table_is_large_enough() -> None:
    assert len(INVALID) >= 30


def test_generate_payload_is_camel_case_and_omits_unset() -> None:
    payload = GenerateRequest(prompt="A cat", duration=10, aspect_ratio="9:16").to_payload()
    assert payload == {"prompt": "A cat", "duration": 10, "quality": "720p", "aspectRatio": "9:16", "waterMark": ""}


def test_generate_image_to_video_with_seed_and_callback() -> None:
    request = GenerateRequest(
        prompt="pan", image_url=OK_URL, quality="1080p", callback_url="https://hooks.example/x", seed=12345
    )
    assert request.to_payload() == {
        "prompt": "pan",
        "imageUrl": OK_URL,
        "duration": 5,
        "quality": "1080p",
        "aspectRatio": "16:9",
        "waterMark": "",
        "callBackUrl": "https://hooks.example/x",
        "seed": 12345,
    }


def test_image_to_video_may_omit_aspect_ratio() -> None:
    assert "aspectRatio" not in GenerateRequest(prompt="p", image_url=OK_URL, aspect_ratio=None).to_payload()


def test_resolution_is_an_alias_of_quality_in_python_only() -> None:
    request = GenerateRequest.build(prompt="p", resolution="1080p")
    assert request.quality == "1080p"
    assert "resolution" not in request.to_payload()
    assert request.to_payload()["quality"] == "1080p"
    with pytest.raises(RunwayParameterError, match="resolution"):
        GenerateRequest.build(prompt="p", resolution="1080p", quality="720p")


def test_limits_are_configurable() -> None:
    limits = ValidationLimits(max_prompt_length=10, durations=(5, 10))
    with pytest.raises(RunwayParameterError, match="at most 10 characters"):
        GenerateRequest(prompt="x" * 11, limits=limits)
    with pytest.raises(RunwayParameterError, match="5, 10"):
        GenerateRequest(prompt="x", duration=8, limits=limits)
    assert GenerateRequest(prompt="x" * 2000, limits=ValidationLimits(max_prompt_length=2048)).prompt


def test_limits_from_connection_extra() -> None:
    limits = ValidationLimits.from_extra({"max_prompt_length": "2048", "allowed_durations": "5, 10"})
    assert limits == ValidationLimits(max_prompt_length=2048, durations=(5, 10))
    assert ValidationLimits.from_extra(None) == ValidationLimits()


def test_extend_payload() -> None:
    payload = ExtendRequest(source_task_id="abc-1", prompt="more", water_mark="me").to_payload()
    assert payload == {"taskId": "abc-1", "prompt": "more", "quality": "720p", "waterMark": "me"}


def test_aleph_payload_and_21_9() -> None:
    payload = AlephRequest(prompt="oil", video_url=OK_URL, aspect_ratio="21:9", seed=7, upload_cn=True).to_payload()
    assert payload == {
        "prompt": "oil",
        "videoUrl": OK_URL,
        "aspectRatio": "21:9",
        "seed": 7,
        "waterMark": "",
        "uploadCn": True,
    }


@pytest.mark.parametrize("cls", [GenerateRequest, ExtendRequest, AlephRequest])
def test_from_payload_round_trips(cls: type[Any]) -> None:
    samples: dict[type[Any], Any] = {
        GenerateRequest: GenerateRequest(prompt="p", image_url=OK_URL, duration=8, seed=99),
        ExtendRequest: ExtendRequest(source_task_id="t", prompt="p", callback_url="https://h/cb"),
        AlephRequest: AlephRequest(prompt="p", video_url=OK_URL, reference_image=OK_URL),
    }
    original = samples[cls]
    assert cls.from_payload(original.to_payload()) == original


def test_from_payload_reports_missing_wire_fields_by_python_name() -> None:
    with pytest.raises(RunwayParameterError) as excinfo:
        AlephRequest.from_payload({"prompt": "p"})
    assert excinfo.value.field == "video_url"
