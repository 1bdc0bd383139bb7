"""What KIE's newer documentation says that the seeds did not (issue 14, "Today's API").

Each test pins one fact of ``kie-runway-api.md`` ("Newer facts") and fails on the code before it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_runway.core import (
    ExtendRequest,
    RunwayConcurrencyLimitError,
    RunwayFeatureUnavailableError,
    RunwayNotExtendableError,
    RunwayNotFoundError,
    RunwayParameterError,
    RunwayRequestRejectedError,
    RunwayTask,
    RunwayUnavailableError,
    TaskStatus,
    ValidationLimits,
    check_extendable,
    parse_aleph_record,
    parse_callback,
    parse_envelope,
    parse_runway_record,
)
from airflow_provider_runway.core.wire import (
    ALEPH_GENERATE_PATH,
    ALEPH_RECORD_INFO_PATH,
    RUNWAY_EXTEND_PATH,
    RUNWAY_GENERATE_PATH,
    RUNWAY_RECORD_DETAIL_PATH,
)

UTC = timezone.utc
CONCURRENCY = "Reached the limit for concurrent generations"
NOT_EXTENDABLE = "Video generated after 1080P cannot be extended"


def _body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": None}).encode()


def _raise(code: int, msg: str, path: str, http_status: int = 200) -> Exception:
    with pytest.raises(Exception) as caught:
        parse_envelope(http_status, _body(code, msg), method="POST" if "generate" in path else "GET", path=path)
    return caught.value


# -- successFlag 2 and 3 ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [2, 3, "2", "3", 2.0])
def test_aleph_success_flag_2_or_3_is_a_failure_carrying_error_message(flag: Any) -> None:
    """Fact: Aleph successFlag 2 (create failed) / 3 (generation failed), int or string, is a failure."""
    task = parse_aleph_record(
        {"taskId": "al-1", "successFlag": flag, "errorCode": 0, "errorMessage": "Content moderation failed"}
    )
    assert task.status is TaskStatus.FAILED
    assert task.fail_message == "Content moderation failed"


@pytest.mark.parametrize(("flag", "reason"), [(2, "could not be created"), (3, "generation failed")])
def test_aleph_success_flag_failure_without_message_says_which(flag: int, reason: str) -> None:
    """Fact: successFlag 2/3 without errorMessage is still a failure, not 'success without a video URL'."""
    task = parse_aleph_record({"taskId": "al-1", "successFlag": flag, "errorCode": None, "errorMessage": ""})
    assert task.status is TaskStatus.FAILED
    assert task.fail_message is not None and reason in task.fail_message


def test_aleph_success_flag_0_and_1_keep_their_meaning() -> None:
    """Fact: 0 with errorMessage is a failure, 1 a success, 0 alone in progress (unchanged)."""
    failed = parse_aleph_record({"taskId": "a", "successFlag": 0, "errorCode": 0, "errorMessage": "bad"})
    done = parse_aleph_record({"taskId": "a", "successFlag": 1, "response": {"resultVideoUrl": "https://f/v.mp4"}})
    waiting = parse_aleph_record({"taskId": "a", "successFlag": 0, "errorCode": 0, "errorMessage": ""})
    assert (failed.status, failed.fail_message) == (TaskStatus.FAILED, "bad")
    assert (done.status, done.video_url) == (TaskStatus.SUCCEEDED, "https://f/v.mp4")
    assert waiting.status is TaskStatus.PENDING


# -- 408 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 408])
def test_408_is_a_transient_unavailable_error(http_status: int) -> None:
    """Fact: code 408 ("upstream returned nothing for over 10 minutes") is transient, not a rejection.

    As a RunwayUnavailableError other than 455, the hook retries it on reads (``retryable``) and
    reports a create as outcome unknown, exactly as it does a 500.
    """
    error = _raise(408, "upstream returned nothing for over 10 minutes", RUNWAY_RECORD_DETAIL_PATH, http_status)
    assert isinstance(error, RunwayUnavailableError)
    assert error.retryable and error.code == 408
    assert not isinstance(error, RunwayRequestRejectedError)


def test_408_on_an_aleph_create_is_not_taken_for_aleph_being_gone() -> None:
    """Fact: 408 is transient on every endpoint, Aleph's included."""
    error = _raise(408, "upstream returned nothing for over 10 minutes", ALEPH_GENERATE_PATH)
    assert type(error) is RunwayUnavailableError


# -- generateTime ----------------------------------------------------------------------------------


def test_runway_generate_time_is_the_completion_time() -> None:
    """Fact: Runway generateTime is when the generation completed (zone undocumented: read as UTC)."""
    task = parse_runway_record(
        {
            "taskId": "t1",
            "state": "success",
            "generateTime": "2023-08-15 14:30:45",
            "videoInfo": {"videoUrl": "https://f/v.mp4"},
        }
    )
    assert task.completed_at == datetime(2023, 8, 15, 14, 30, 45, tzinfo=UTC)
    assert task.created_at is None
    assert task.to_dict()["completed_at"] == "2023-08-15T14:30:45+00:00"
    assert task.to_dict()["created_at"] is None


def test_unfinished_runway_task_has_no_completion_time() -> None:
    """Fact: generateTime is a completion time, so a task still generating has none."""
    task = parse_runway_record({"taskId": "t1", "state": "generating", "generateTime": "2023-08-15 14:30:45"})
    assert task.completed_at is None


# -- extending a 1080p video -----------------------------------------------------------------------


def test_refused_extension_is_recognised_and_not_retryable() -> None:
    """Fact: KIE refuses to extend a 1080p video ("Video generated after 1080P cannot be extended")."""
    error = _raise(400, NOT_EXTENDABLE, RUNWAY_EXTEND_PATH)
    assert isinstance(error, RunwayNotExtendableError)
    assert isinstance(error, RunwayRequestRejectedError) and not error.retryable
    assert NOT_EXTENDABLE in str(error) and "720p" in str(error)


def test_extension_that_failed_as_a_task_is_recognised() -> None:
    """Fact: the same refusal reported as a failed task is recognisable on the task."""
    task = parse_runway_record({"taskId": "t2", "state": "fail", "failCode": 400, "failMsg": NOT_EXTENDABLE})
    assert task.failed_not_extendable
    assert not parse_runway_record({"taskId": "t2", "state": "fail", "failMsg": "other"}).failed_not_extendable


def test_extend_request_refuses_a_known_1080p_source_naming_the_parameter() -> None:
    """Fact: a 1080p source cannot be extended, so a known one fails before any HTTP call."""
    with pytest.raises(RunwayParameterError) as caught:
        ExtendRequest(source_task_id="t1", prompt="more", source_quality="1080p")
    assert caught.value.field == "source_quality"
    assert "'720p'" in str(caught.value) and "1080p" in str(caught.value)
    assert ExtendRequest(source_task_id="t1", prompt="more", source_quality="720p").to_payload() == {
        "taskId": "t1",
        "prompt": "more",
        "quality": "720p",
        "waterMark": "",
    }
    assert check_extendable(None) is None
    with pytest.raises(RunwayParameterError, match=r"source_quality.*'720p', '1080p'"):
        check_extendable("4k")


def test_source_quality_comes_from_the_record_when_it_carries_it() -> None:
    """Fact: record-detail's generateParam may carry the quality; the task exposes it for check_extendable."""
    record = {
        "taskId": "t1",
        "state": "success",
        "generateParam": {"prompt": "cat", "quality": "1080P"},
        "videoInfo": {"videoUrl": "https://f/v.mp4"},
    }
    task = parse_runway_record(record)
    assert task.quality == "1080p"
    assert RunwayTask.from_dict(task.to_dict()) == task
    with pytest.raises(RunwayParameterError):
        check_extendable(task.quality)
    assert parse_runway_record({**record, "generateParam": {"prompt": "cat"}}).quality is None


# -- concurrency limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 400])
def test_create_refused_for_the_concurrency_limit_is_its_own_retryable_error(http_status: int) -> None:
    """Fact: code 400 "Reached the limit for concurrent generations" created (and charged) nothing."""
    error = _raise(400, CONCURRENCY, RUNWAY_GENERATE_PATH, http_status)
    assert isinstance(error, RunwayConcurrencyLimitError)
    assert isinstance(error, RunwayRequestRejectedError) and error.retryable and error.code == 400
    other = _raise(400, "Inappropriate content detected", RUNWAY_GENERATE_PATH)
    assert type(other) is RunwayRequestRejectedError and not other.retryable


def test_task_failed_for_the_concurrency_limit_is_recognisable() -> None:
    """Fact: KIE may accept the create and then fail the task (callback or record code 400, that message)."""
    callback = parse_callback({"code": 400, "msg": CONCURRENCY, "data": {"task_id": "t9"}})
    record = parse_runway_record({"taskId": "t9", "state": "fail", "failCode": 400, "failMsg": CONCURRENCY})
    aleph = parse_aleph_record({"taskId": "a9", "successFlag": 0, "errorCode": 400, "errorMessage": CONCURRENCY})
    assert callback.failed_for_concurrency and record.failed_for_concurrency and aleph.failed_for_concurrency
    other = parse_callback({"code": 400, "msg": "Inappropriate content detected", "data": {"task_id": "t9"}})
    assert not other.failed_for_concurrency


# -- Aleph not available ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg"),
    [
        (404, "Not Found"),
        (505, "feature disabled"),
        (422, "The model is no longer available"),
        (400, "Runway Aleph has been discontinued"),
        (500, "This model has been discontinued"),
        (422, "model not found"),
    ],
)
def test_aleph_not_available_is_a_permanent_distinct_error(code: int, msg: str) -> None:
    """Fact: KIE marks Aleph discontinued; its endpoint may answer 404, 505 or a body saying so."""
    error = _raise(code, msg, ALEPH_GENERATE_PATH)
    assert isinstance(error, RunwayFeatureUnavailableError)
    assert not error.retryable
    assert "Aleph is not served for this account" in str(error)


@pytest.mark.parametrize(
    ("code", "msg", "path", "cls"),
    [
        (404, "task not found", ALEPH_RECORD_INFO_PATH, RunwayNotFoundError),
        (422, "aspectRatio 21:9 is not supported for this video", ALEPH_GENERATE_PATH, RunwayRequestRejectedError),
        (500, "Service temporarily not available", ALEPH_GENERATE_PATH, RunwayUnavailableError),
        (505, "feature disabled", RUNWAY_GENERATE_PATH, RunwayRequestRejectedError),
        (404, "Not Found", RUNWAY_GENERATE_PATH, RunwayNotFoundError),
    ],
)
def test_other_answers_are_not_taken_for_aleph_being_gone(code: int, msg: str, path: str, cls: type) -> None:
    """Fact: only Aleph's endpoints, with a 404/505 on create or a body saying so, mean Aleph is gone."""
    assert type(_raise(code, msg, path)) is cls


# -- validation messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_prompt_length": "long"}, "max_prompt_length"),
        ({"max_prompt_length": 0}, "max_prompt_length"),
        ({"allowed_durations": "5,ten"}, "allowed_durations"),
        ({"allowed_durations": ""}, "allowed_durations"),
        ({"allowed_durations": [5, -1]}, "allowed_durations"),
    ],
)
def test_bad_connection_limits_name_the_extra_and_what_is_allowed(extra: dict[str, Any], field: str) -> None:
    """Rule: bad input names the parameter and the allowed values (here a connection extra)."""
    with pytest.raises(RunwayParameterError) as caught:
        ValidationLimits.from_extra(extra)
    assert caught.value.field == field
    assert "positive integer" in str(caught.value)
