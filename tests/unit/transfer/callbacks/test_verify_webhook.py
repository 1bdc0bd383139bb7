"""Signature verification and parsing of KIE callbacks (Airflow-free core)."""

from __future__ import annotations

import json
import threading

import pytest

from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.core.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayCache,
    WebhookVerificationError,
    compute_signature,
    parse_callback_body,
    verify_webhook,
)

KEY = "whsec-test-key-0123456789"
NOW = 1_767_000_000
TASK_ID = "ee603959-debb-48d1-98c4-a6d1c717eba6"

RUNWAY_OK = {
    "code": 200,
    "msg": "All generated successfully.",
    "data": {
        "task_id": TASK_ID,
        "video_id": "485da89c-7fca-4340-8c04-101025b2ae71",
        "video_url": "https://file.example/v.mp4",
        "image_url": "https://file.example/v.png",
    },
}
ALEPH_OK = {
    "code": 200,
    "msg": "success",
    "data": {"result_video_url": "https://file.example/a.mp4", "result_image_url": "https://file.example/a.png"},
    "taskId": "aleph-123",
}


def signed(body: dict, *, key: str = KEY, timestamp: int = NOW, task_id: str | None = None) -> tuple[dict, bytes]:
    tid = task_id or body.get("taskId") or body["data"]["task_id"]
    headers = {SIGNATURE_HEADER: compute_signature(key, tid, timestamp), TIMESTAMP_HEADER: str(timestamp)}
    return headers, json.dumps(body).encode()


def test_valid_runway_callback_returns_task() -> None:
    headers, body = signed(RUNWAY_OK)
    task = verify_webhook(headers, body, KEY, now=NOW + 5)
    assert task.task_id == TASK_ID
    assert task.family is TaskFamily.RUNWAY
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == "https://file.example/v.mp4"


def test_valid_aleph_callback_with_str_and_mapping_bodies() -> None:
    headers, body = signed(ALEPH_OK)
    assert verify_webhook(headers, body.decode(), KEY, now=NOW, replay_cache=None).task_id == "aleph-123"
    task = verify_webhook(headers, ALEPH_OK, KEY, now=NOW, replay_cache=None)
    assert task.family is TaskFamily.ALEPH
    assert task.video_url == "https://file.example/a.mp4"


def test_header_names_are_case_insensitive() -> None:
    headers, body = signed(RUNWAY_OK)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook(lowered, body, KEY, now=NOW).task_id == TASK_ID


def test_wrong_key_is_rejected_without_leaking_either_key() -> None:
    headers, body = signed(RUNWAY_OK, key="another-key")
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == "bad_signature"
    assert KEY not in str(err.value)
    assert "another-key" not in str(err.value)


def test_tampered_task_id_is_rejected() -> None:
    headers, _ = signed(RUNWAY_OK)
    tampered = json.loads(json.dumps(RUNWAY_OK))
    tampered["data"]["task_id"] = "someone-elses-task"
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, json.dumps(tampered).encode(), KEY, now=NOW)
    assert err.value.reason == "bad_signature"


def test_tampered_timestamp_is_rejected() -> None:
    headers, body = signed(RUNWAY_OK)
    headers[TIMESTAMP_HEADER] = str(NOW + 1)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("age", "reason"),
    [(301, "stale"), (10_000, "stale"), (-301, "future"), (-86_400, "future")],
)
def test_timestamps_outside_the_skew_are_rejected(age: int, reason: str) -> None:
    headers, body = signed(RUNWAY_OK, timestamp=NOW - age)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == reason


@pytest.mark.parametrize("age", [0, 299, -299])
def test_timestamps_inside_the_skew_are_accepted(age: int) -> None:
    headers, body = signed(RUNWAY_OK, timestamp=NOW - age)
    assert verify_webhook(headers, body, KEY, now=NOW).task_id == TASK_ID


def test_max_skew_is_configurable() -> None:
    headers, body = signed(RUNWAY_OK, timestamp=NOW - 60)
    assert verify_webhook(headers, body, KEY, now=NOW, max_skew=61).task_id == TASK_ID
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW, max_skew=30)
    assert err.value.reason == "stale"


def test_replayed_callback_is_rejected() -> None:
    cache = ReplayCache()
    headers, body = signed(RUNWAY_OK)
    verify_webhook(headers, body, KEY, now=NOW, replay_cache=cache)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW + 1, replay_cache=cache)
    assert err.value.reason == "replayed"
    # A genuine redelivery signed at a new timestamp is a different event.
    headers2, _ = signed(RUNWAY_OK, timestamp=NOW + 2)
    assert verify_webhook(headers2, body, KEY, now=NOW + 2, replay_cache=cache).task_id == TASK_ID


def test_rejected_callbacks_do_not_poison_the_replay_cache() -> None:
    cache = ReplayCache()
    headers, body = signed(RUNWAY_OK)
    forged = {**headers, SIGNATURE_HEADER: compute_signature("wrong", TASK_ID, NOW)}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(forged, body, KEY, now=NOW, replay_cache=cache)
    assert len(cache) == 0
    assert verify_webhook(headers, body, KEY, now=NOW, replay_cache=cache).task_id == TASK_ID


def test_replay_cache_forgets_after_ttl_and_is_bounded() -> None:
    cache = ReplayCache(ttl=10, max_entries=3)
    assert cache.check_and_add("a", "1", now=0)
    assert not cache.check_and_add("a", "1", now=5)
    assert cache.check_and_add("a", "1", now=11)
    for name in "bcde":
        assert cache.check_and_add(name, "1", now=12)
    assert len(cache) == 3


def test_replay_cache_is_thread_safe() -> None:
    cache = ReplayCache()
    accepted: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        accepted.append(cache.check_and_add("same", "1", now=NOW))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(accepted) == [False] * 7 + [True]


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_missing_header_is_named(missing: str) -> None:
    headers, body = signed(RUNWAY_OK)
    del headers[missing]
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == "missing_header"
    assert missing in str(err.value)


def test_non_numeric_timestamp_is_rejected() -> None:
    headers, body = signed(RUNWAY_OK)
    headers[TIMESTAMP_HEADER] = "yesterday"
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == "bad_timestamp"


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"code": 200, "data": {}}'])
def test_malformed_body_is_rejected(body: bytes) -> None:
    headers = {SIGNATURE_HEADER: "x", TIMESTAMP_HEADER: str(NOW)}
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, KEY, now=NOW)
    assert err.value.reason == "malformed_body"


def test_oversized_body_is_rejected() -> None:
    headers, _ = signed(RUNWAY_OK)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, b" " * (2 * 1024 * 1024), KEY, now=NOW)
    assert err.value.reason == "malformed_body"


def test_empty_key_refuses_to_verify() -> None:
    headers, body = signed(RUNWAY_OK)
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(headers, body, "", now=NOW)
    assert err.value.reason == "no_key"


def test_default_clock_is_the_current_time() -> None:
    import time

    headers, body = signed(RUNWAY_OK, timestamp=int(time.time()))
    assert verify_webhook(headers, body, KEY).task_id == TASK_ID
    old_headers, _ = signed(RUNWAY_OK, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(old_headers, body, KEY)


class TestParseCallbackBody:
    def test_runway_success(self) -> None:
        task = parse_callback_body(json.dumps(RUNWAY_OK).encode())
        assert (task.task_id, task.family, task.status) == (TASK_ID, TaskFamily.RUNWAY, TaskStatus.SUCCEEDED)
        assert task.image_url == "https://file.example/v.png"
        assert task.video_id == "485da89c-7fca-4340-8c04-101025b2ae71"

    def test_runway_failure_with_only_task_id(self) -> None:
        body = {"code": 400, "msg": "Inappropriate content detected", "data": {"task_id": "t-1"}}
        task = parse_callback_body(json.dumps(body))
        assert task.status is TaskStatus.FAILED
        assert task.fail_code == "400"
        assert task.fail_message == "Inappropriate content detected"
        assert task.video_url is None

    def test_runway_server_failure(self) -> None:
        task = parse_callback_body({"code": 500, "msg": "Internal error", "data": {"task_id": "t-2"}})
        assert (task.status, task.fail_code) == (TaskStatus.FAILED, "500")

    def test_aleph_success(self) -> None:
        task = parse_callback_body(ALEPH_OK)
        assert (task.task_id, task.family, task.status) == ("aleph-123", TaskFamily.ALEPH, TaskStatus.SUCCEEDED)
        assert task.image_url == "https://file.example/a.png"

    def test_aleph_failure_with_null_data(self) -> None:
        body = {"code": 400, "msg": "Failed to fetch the input video", "data": None, "taskId": "aleph-9"}
        task = parse_callback_body(json.dumps(body).encode())
        assert (task.family, task.status, task.fail_code) == (TaskFamily.ALEPH, TaskStatus.FAILED, "400")
        assert task.fail_message == "Failed to fetch the input video"

    def test_success_without_video_is_a_failure(self) -> None:
        task = parse_callback_body({"code": 200, "msg": "ok", "data": {"task_id": "t-3"}})
        assert task.status is TaskStatus.FAILED

    @pytest.mark.parametrize("body", [b"", b"{", b"null", b'"text"', b'{"code": 200}'])
    def test_bad_bodies_raise_value_error(self, body: bytes) -> None:
        with pytest.raises(ValueError):
            parse_callback_body(body)

    def test_signed_failure_callback_verifies(self) -> None:
        body = {"code": 400, "msg": "Reached the limit for concurrent generations", "data": {"task_id": "t-4"}}
        headers, raw = signed(body)
        task = verify_webhook(headers, raw, KEY, now=NOW)
        assert task.status is TaskStatus.FAILED
        assert "concurrent" in (task.fail_message or "")
