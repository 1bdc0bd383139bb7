"""Ids and URLs in status and callback bodies are checked as inputs are; the id asked about is kept."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_runway.core import models
from airflow_provider_runway.core.results import (
    TaskStatus,
    parse_aleph_record,
    parse_callback,
    parse_runway_record,
)


def test_the_id_asked_about_wins_over_the_body() -> None:
    assert parse_runway_record({"taskId": "other", "state": "wait"}, task_id="t-1").task_id == "t-1"
    aleph = {"taskId": "other", "successFlag": 0, "response": {"taskId": "third"}}
    assert parse_aleph_record(aleph, task_id="a-1").task_id == "a-1"


def test_without_a_requested_id_only_a_valid_body_id_is_used() -> None:
    assert parse_runway_record({"taskId": "t-9", "state": "wait"}).task_id == "t-9"
    assert parse_runway_record({"taskId": "a b", "state": "wait"}).task_id == ""


def test_ids_in_a_record_are_validated() -> None:
    record = {
        "taskId": "t-1",
        "state": "success",
        "parentTaskId": "../../x y",
        "videoInfo": {"videoId": "v\n1", "videoUrl": "https://cdn.test/v.mp4"},
    }
    task = parse_runway_record(record, task_id="t-1")
    assert (task.parent_task_id, task.video_id) == (None, None)
    assert task.status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:video/mp4;base64,AAAA", "file:///etc/passwd", "http://"])
def test_aleph_success_with_an_unusable_url_is_a_failure(url: str) -> None:
    task = parse_aleph_record({"successFlag": 1, "response": {"resultVideoUrl": url}}, task_id="a-1")
    assert task.status is TaskStatus.FAILED
    assert task.fail_code == "invalid_video_url"
    assert "not an absolute http(s) URL" in (task.fail_message or "")


def test_a_missing_video_url_keeps_its_own_message() -> None:
    task = parse_runway_record({"state": "success"}, task_id="t-1")
    assert task.fail_code == "no_video_url"


def test_callback_urls_and_ids_are_validated() -> None:
    body: dict[str, Any] = {
        "code": 200,
        "data": {"task_id": "t-1", "video_url": "javascript:x", "image_url": "ftp://x"},
    }
    task = parse_callback(body)
    assert (task.status, task.fail_code, task.image_url) == (TaskStatus.FAILED, "invalid_video_url", None)
    with pytest.raises(ValueError, match="invalid task id"):
        parse_callback({"code": 200, "data": {"task_id": "a b", "video_url": "https://cdn.test/v.mp4"}})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://cdn.test/v.mp4?sig=1", True),
        ("HTTP://cdn.test/v.mp4", True),
        ("https://[::1]:8080/x", True),
        ("https://cdn.test:99999/x", False),
        ("https://[::1/x", False),
        ("https://cdn.test/\x7f", False),
        ("https://:80/x", False),
        ("mailto:a@b.c", False),
        ("https://cdn.test/" + "a" * 2048, False),
        (None, False),
        (b"https://cdn.test/", False),
    ],
)
def test_is_http_url(value: Any, expected: bool) -> None:
    assert models.is_http_url(value) is expected


def test_check_url_refuses_what_is_http_url_refuses() -> None:
    with pytest.raises(ValueError, match="image_url"):
        models.check_url("https://:80/x", "image_url")


def test_is_task_id() -> None:
    assert models.is_task_id("ee603959-debb-48d1-98c4-a6d1c717eba6")
    assert not any(models.is_task_id(v) for v in ("", "a b", "a\x7f", "x" * 129, None, 12))


def test_control_or_space_is_isspace_or_an_ascii_control_on_every_code_point() -> None:
    disagree = [
        hex(code)
        for code in range(0x110000)
        if models._has_control_or_space(chr(code)) != (chr(code).isspace() or code < 32 or code == 127)
    ]
    assert disagree == []
    assert models._has_control_or_space("https://cdn.test/a\u2028b")
    assert not models._has_control_or_space("https://cdn.test/vidéo.mp4")


def test_redact_url() -> None:
    assert models.redact_url("https://user:pw@cdn.test/a.mp4?token=s3cret#frag") == "https://cdn.test/a.mp4"
    assert models.redact_url("https://[::1/x?token=s") == "<unparsable URL>"
