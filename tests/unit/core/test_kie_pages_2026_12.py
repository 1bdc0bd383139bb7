"""What KIE's current pages (read 2026-12) say that the core did not know (issue 23, items 7-10).

Each test pins one fact of ``kie-runway-api.md`` ("Newer facts from KIE's current pages") and fails on
the code before it: extend's ``imageUrl``/``expandPrompt``, the ``id``/``parentId`` record shape, the
per-key usage caps and the IP whitelist, and three failure messages seen in callbacks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_runway.core import (
    ExtendRequest,
    RunwayAuthError,
    RunwayConcurrencyLimitError,
    RunwayParameterError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayTask,
    RunwayUnavailableError,
    TaskFamily,
    TaskStatus,
    parse_callback,
    parse_envelope,
    parse_runway_record,
)
from airflow_provider_runway.core.errors import RunwayBadInputError, RunwayUsageCapError, error_class_for_code
from airflow_provider_runway.core.parameters import PLACEHOLDERS, coerce_rendered
from airflow_provider_runway.core.retry import (
    create_may_retry,
    create_outcome_unknown,
    read_may_retry,
    waits_for_capacity,
)
from airflow_provider_runway.core.wire import RUNWAY_EXTEND_PATH, RUNWAY_GENERATE_PATH, RUNWAY_RECORD_DETAIL_PATH

FREE_ACCOUNT = "Please try again later. You can upgrade to Standard membership to start generating now."
BAD_FORMAT = "Incorrect image format."
BAD_SIZE = "Unsupported width or height, please check the image size and try again."
ACCESS = "You do not have access permissions"
IMAGE = "https://cdn.example.com/still.png"


def _raised(code: int, msg: str, path: str = RUNWAY_GENERATE_PATH, http_status: int = 200) -> Exception:
    body = json.dumps({"code": code, "msg": msg, "data": None}).encode()
    with pytest.raises(Exception) as caught:
        parse_envelope(http_status, body, method="POST", path=path)
    return caught.value


# -- 7. extend sends imageUrl and expandPrompt when given --------------------------------------------


def test_extend_sends_image_url_and_expand_prompt_when_given() -> None:
    request = ExtendRequest(source_task_id="src-1", prompt="And then", image_url=IMAGE, expand_prompt=True)
    payload = request.to_payload()
    assert payload["imageUrl"] == IMAGE
    assert payload["expandPrompt"] is True
    assert ExtendRequest(source_task_id="src-1", prompt="x", expand_prompt=False).to_payload()["expandPrompt"] is False


def test_extend_omits_image_url_and_expand_prompt_when_not_given() -> None:
    payload = ExtendRequest(source_task_id="src-1", prompt="And then").to_payload()
    assert "imageUrl" not in payload and "expandPrompt" not in payload


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("image_url", "not a url", "absolute http(s) URL"),
        ("image_url", "ftp://host/a.png", "absolute http(s) URL"),
        ("image_url", 42, "URL string"),
        ("expand_prompt", "yes", "True or False"),
        ("expand_prompt", 1, "True or False"),
    ],
)
def test_extend_refuses_a_bad_image_url_or_expand_prompt_before_any_call(field: str, value: Any, allowed: str) -> None:
    with pytest.raises(RunwayParameterError) as caught:
        ExtendRequest(source_task_id="src-1", prompt="And then", **{field: value})
    assert caught.value.field == field
    assert allowed in str(caught.value) and field in str(caught.value)


def test_extend_wire_body_round_trips_the_new_fields() -> None:
    request = ExtendRequest(source_task_id="src-1", prompt="And then", image_url=IMAGE, expand_prompt=False)
    assert ExtendRequest.from_payload(request.to_payload()) == request


def test_rendered_expand_prompt_is_a_boolean_again_and_has_a_parse_time_stand_in() -> None:
    assert coerce_rendered("expand_prompt", "True") is True
    assert coerce_rendered("expand_prompt", "false") is False
    assert coerce_rendered("expand_prompt", "None") is None
    ExtendRequest(source_task_id="src-1", prompt="x", expand_prompt=PLACEHOLDERS["expand_prompt"])


# -- 8. record-detail with id and parentId -------------------------------------------------------------


def _id_shaped(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 12345,
        "parentId": 0,
        "generateParam": {"prompt": "a fox", "imageUrl": "", "expandPrompt": True, "parentId": 0},
        "state": "success",
        "generateTime": "2026-12-01 10:00:00",
        "videoInfo": {"videoId": "v-1", "videoUrl": "https://cdn.example.com/v.mp4", "imageUrl": IMAGE},
        "failCode": None,
        "failMsg": "",
        "expireFlag": 0,
    }
    record.update(overrides)
    return record


def test_record_with_id_and_no_task_id_names_the_task() -> None:
    task = parse_runway_record(_id_shaped())
    assert task.task_id == "12345"
    assert task.status is TaskStatus.SUCCEEDED and task.parent_task_id is None  # parentId 0: no parent


@pytest.mark.parametrize(
    "overrides",
    [
        {"parentId": 777},
        {"parentId": "777"},
        {"parentId": 0, "generateParam": {"prompt": "a fox", "parentId": 777}},
        {"parentId": "", "generateParam": {"prompt": "a fox", "parentId": "777"}},
    ],
    ids=["top-int", "top-str", "in-generateParam", "empty-top"],
)
def test_record_with_parent_id_reads_the_parent(overrides: dict[str, Any]) -> None:
    assert parse_runway_record(_id_shaped(**overrides)).parent_task_id == "777"


@pytest.mark.parametrize("none", [0, "0", "", None])
def test_a_zero_or_empty_parent_id_is_no_parent(none: Any) -> None:
    record = _id_shaped(parentId=none, generateParam={"prompt": "x", "parentId": none})
    assert parse_runway_record(record).parent_task_id is None


def test_the_documented_shape_still_wins_and_the_asked_id_is_kept() -> None:
    record = _id_shaped(taskId="task-abc", parentTaskId="parent-abc", parentId=777)
    task = parse_runway_record(record)
    assert (task.task_id, task.parent_task_id) == ("task-abc", "parent-abc")
    assert parse_runway_record(_id_shaped(), task_id="asked").task_id == "asked"


# -- 9. usage caps and the IP whitelist ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "cap"),
    [
        ("Your API key has reached its hourly usage limit", "hourly"),
        ("Daily limit reached for this API key", "daily"),
        ("The key's total usage cap is exceeded", "total"),
        ("API key usage limit exceeded", "usage"),
        ("Quota exceeded", "usage"),
        ("Request limit per day exceeded", "daily"),
    ],
)
def test_a_cap_reached_429_fails_at_once_naming_the_cap(message: str, cap: str) -> None:
    for http_status in (200, 429):  # both error styles
        error = _raised(429, message, http_status=http_status)
        assert isinstance(error, RunwayUsageCapError)
        assert not isinstance(error, RunwayRateLimitedError)
        assert error.cap == cap
        assert not error.retryable
        assert not read_may_retry(error) and not create_may_retry(error)
        assert not create_outcome_unknown(error)  # KIE refused: nothing was created
        assert not waits_for_capacity(error)  # the operator does not wait for it either
        assert message in str(error)
        assert (f"{cap} usage cap" if cap != "usage" else "usage cap") in str(error)
        assert "not retried" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        "Too many requests",
        "Rate limit exceeded",
        "Request limit has been exceeded for this resource",
        "Too many requests: at most 20 new requests per 10 seconds per account",
        FREE_ACCOUNT,
        "",
    ],
)
def test_the_rate_limit_429_is_still_retried(message: str) -> None:
    error = _raised(429, message, http_status=429)
    assert type(error) is RunwayRateLimitedError
    assert error.retryable and create_may_retry(error) and waits_for_capacity(error)


def test_an_ip_refused_401_names_the_whitelist() -> None:
    error = _raised(401, ACCESS, http_status=401)
    assert isinstance(error, RunwayAuthError) and not error.retryable
    assert "You do not have access permissions" in str(error)
    assert "check the key's IP whitelist in KIE's dashboard" in str(error).replace("the API key, and ", "")
    assert error.remote_message == ACCESS


def test_another_401_gets_no_whitelist_hint() -> None:
    error = _raised(401, "Invalid API key")
    assert isinstance(error, RunwayAuthError) and "whitelist" not in str(error)


# -- 10. failure messages seen in callbacks ------------------------------------------------------------------


def _failed(message: str) -> RunwayTask:
    return RunwayTask(task_id="t-1", family=TaskFamily.RUNWAY, status=TaskStatus.FAILED, fail_message=message)


@pytest.mark.parametrize("message", [BAD_FORMAT, BAD_SIZE, "Unsupported width or height..."])
def test_an_unusable_input_is_a_bad_input_failure_not_a_capacity_wait(message: str) -> None:
    task = _failed(message)
    assert task.failed_for_bad_input
    assert not task.failed_for_concurrency and not waits_for_capacity(task)


@pytest.mark.parametrize("message", [BAD_FORMAT, BAD_SIZE])
@pytest.mark.parametrize("code", [400, 422, 500, 501])
def test_an_unusable_input_refused_at_create_fails_once_with_kies_words(message: str, code: int) -> None:
    error = _raised(code, message, path=RUNWAY_EXTEND_PATH)
    assert isinstance(error, RunwayBadInputError) and isinstance(error, RunwayRequestRejectedError)
    assert not error.retryable and not create_outcome_unknown(error) and not waits_for_capacity(error)
    assert message in str(error)


def test_a_callback_with_an_unusable_input_is_a_bad_input_failure() -> None:
    task = parse_callback({"code": 400, "msg": BAD_FORMAT, "data": {"task_id": "t-1"}})
    assert task.status is TaskStatus.FAILED and task.failed_for_bad_input and task.fail_message == BAD_FORMAT


def test_the_free_account_message_is_capacity_as_the_concurrency_limit_is() -> None:
    task = _failed(FREE_ACCOUNT)
    assert task.failed_for_concurrency and waits_for_capacity(task) and not task.failed_for_bad_input
    callback = parse_callback({"code": 400, "msg": FREE_ACCOUNT, "data": {"task_id": "t-1"}})
    assert waits_for_capacity(callback)


@pytest.mark.parametrize("code", [400, 422, 500, 501])
def test_the_free_account_message_refusing_a_create_waits_for_capacity(code: int) -> None:
    error = _raised(code, FREE_ACCOUNT)
    assert isinstance(error, RunwayConcurrencyLimitError)
    assert waits_for_capacity(error) and not create_outcome_unknown(error)


def test_a_server_error_on_a_status_read_keeps_its_class_whatever_it_says() -> None:
    assert error_class_for_code(500, BAD_FORMAT, RUNWAY_RECORD_DETAIL_PATH) is RunwayUnavailableError
    assert error_class_for_code(500, FREE_ACCOUNT, RUNWAY_RECORD_DETAIL_PATH) is RunwayUnavailableError
    assert error_class_for_code(500, "Internal error", RUNWAY_GENERATE_PATH) is RunwayUnavailableError
