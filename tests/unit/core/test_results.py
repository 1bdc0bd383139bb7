from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_runway.core import (
    RunwayTask,
    TaskFamily,
    TaskStatus,
    parse_aleph_record,
    parse_callback,
    parse_record,
    parse_runway_record,
)
from airflow_provider_runway.core.results import NO_VIDEO_MESSAGE, parse_time

UTC = timezone.utc

# The reference's record-detail example.
RUNWAY_DETAIL_SUCCESS = {
    "taskId": "ee603959",
    "parentTaskId": "",
    "generateParam": {"prompt": "cat", "imageUrl": "", "expandPrompt": True},
    "state": "success",
    "generateTime": "2023-08-15 14:30:45",
    "videoInfo": {
        "videoId": "485da89c",
        "taskId": "ee603959",
        "videoUrl": "https://file.com/k/x.mp4",
        "imageUrl": "https://file.com/m/x.png",
    },
    "failCode": None,
    "failMsg": "",
    "expireFlag": 0,
}

# The informal seed's variant: `status` and a flat `videoUrl`, ISO times.
RUNWAY_SEED_FLAT = {
    "taskId": "runway_task_xyz789",
    "status": "success",
    "videoUrl": "https://storage.kie.ai/videos/runway_task_xyz789.mp4",
    "duration": 5,
    "resolution": "1080p",
    "createdAt": "2025-11-15T12:00:00Z",
    "completedAt": "2025-11-15T12:02:45Z",
}

ALEPH_SUCCESS = {
    "taskId": "al-1",
    "paramJson": '{"prompt": "oil"}',
    "response": {"taskId": "al-1", "resultVideoUrl": "https://f/v.mp4", "resultImageUrl": "https://f/v.png"},
    "successFlag": 1,
    "errorCode": 0,
    "errorMessage": "",
    "createTime": "2025-11-15T12:00:00Z",
    "completeTime": "2025-11-15T12:02:45Z",
}


def test_runway_record_detail_success() -> None:
    task = parse_runway_record(RUNWAY_DETAIL_SUCCESS)
    assert task == RunwayTask(
        task_id="ee603959",
        family=TaskFamily.RUNWAY,
        status=TaskStatus.SUCCEEDED,
        raw_state="success",
        video_url="https://file.com/k/x.mp4",
        image_url="https://file.com/m/x.png",
        video_id="485da89c",
        parent_task_id=None,
        expired=False,
        completed_at=datetime(2023, 8, 15, 14, 30, 45, tzinfo=UTC),
    )


def test_runway_seed_flat_variant() -> None:
    task = parse_runway_record(RUNWAY_SEED_FLAT)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == RUNWAY_SEED_FLAT["videoUrl"]
    assert task.created_at == datetime(2025, 11, 15, 12, 0, tzinfo=UTC)
    assert task.completed_at == datetime(2025, 11, 15, 12, 2, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("wait", TaskStatus.PENDING),
        ("queueing", TaskStatus.PENDING),
        ("generating", TaskStatus.RUNNING),
        ("GENERATING", TaskStatus.RUNNING),
        ("teleporting", TaskStatus.PENDING),
        (None, TaskStatus.PENDING),
        (17, TaskStatus.PENDING),
    ],
)
def test_runway_states_and_unknown_states_mean_pending(state: Any, status: TaskStatus) -> None:
    assert parse_runway_record({"taskId": "t", "state": state}).status is status


@pytest.mark.parametrize("data", [None, {}, [], "garbage", 12])
def test_missing_or_odd_data_is_pending_not_a_crash(data: Any) -> None:
    task = parse_runway_record(data, task_id="t9")
    assert task.status is TaskStatus.PENDING
    assert task.task_id == "t9"


@pytest.mark.parametrize(("code", "expected"), [(400, "400"), ("", None), ("CONTENT", "CONTENT"), (None, None)])
def test_runway_failure_keeps_code_and_message(code: Any, expected: str | None) -> None:
    task = parse_runway_record({"taskId": "t", "state": "fail", "failCode": code, "failMsg": "Inappropriate"})
    assert task.status is TaskStatus.FAILED
    assert task.fail_code == expected
    assert task.fail_message == "Inappropriate"


def test_runway_failure_without_reason_gets_one() -> None:
    task = parse_runway_record({"taskId": "t", "state": "fail"})
    assert task.fail_message == "The task failed without a reason"


def test_success_without_video_url_is_a_failure() -> None:
    task = parse_runway_record({"taskId": "t", "state": "success", "videoInfo": {"videoUrl": ""}})
    assert task.status is TaskStatus.FAILED
    assert task.fail_message == NO_VIDEO_MESSAGE


def test_extension_parent_and_expiry() -> None:
    data = dict(RUNWAY_DETAIL_SUCCESS, parentTaskId="parent-1", expireFlag=1)
    task = parse_runway_record(data)
    assert task.parent_task_id == "parent-1"
    assert task.expired is True


def test_aleph_success() -> None:
    task = parse_aleph_record(ALEPH_SUCCESS)
    assert task.family is TaskFamily.ALEPH
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == "https://f/v.mp4"
    assert task.image_url == "https://f/v.png"
    assert task.completed_at == datetime(2025, 11, 15, 12, 2, 45, tzinfo=UTC)


def test_aleph_in_progress() -> None:
    data = {"taskId": "al-2", "response": None, "successFlag": 0, "errorCode": 0, "errorMessage": ""}
    assert parse_aleph_record(data).status is TaskStatus.PENDING


def test_aleph_null_error_code_is_not_a_failure() -> None:
    data = {"taskId": "al-2", "response": None, "successFlag": 0, "errorCode": None, "errorMessage": None}
    assert parse_aleph_record(data).status is TaskStatus.PENDING


@pytest.mark.parametrize(
    ("code", "message", "fail_code"),
    [(501, "", "501"), (0, "video too long", None), (400, "bad input", "400")],
)
def test_aleph_failures(code: int, message: str, fail_code: str | None) -> None:
    data = {"taskId": "al-3", "response": None, "successFlag": 0, "errorCode": code, "errorMessage": message}
    task = parse_aleph_record(data)
    assert task.status is TaskStatus.FAILED
    assert task.fail_code == fail_code
    assert task.fail_message == (message or "The task failed without a reason")


def test_parse_record_dispatches_by_family() -> None:
    assert parse_record("aleph", ALEPH_SUCCESS).family is TaskFamily.ALEPH
    assert parse_record(TaskFamily.RUNWAY, RUNWAY_DETAIL_SUCCESS).family is TaskFamily.RUNWAY
    with pytest.raises(ValueError, match="family"):
        parse_record("sora", {})


def test_runway_callback_success_and_failure() -> None:
    ok = parse_callback(
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {"task_id": "t1", "video_id": "v1", "video_url": "https://f/1.mp4", "image_url": "https://f/1.png"},
        }
    )
    assert (ok.task_id, ok.family, ok.status, ok.video_id) == ("t1", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, "v1")
    failed = parse_callback({"code": 400, "msg": "Inappropriate content detected", "data": {"task_id": "t2"}})
    assert failed.status is TaskStatus.FAILED
    assert failed.fail_code == "400"
    assert failed.fail_message == "Inappropriate content detected"


def test_aleph_callback_success_and_failure() -> None:
    ok = parse_callback(
        {"code": 200, "msg": "success", "data": {"result_video_url": "https://f/a.mp4"}, "taskId": "a1"}
    )
    assert (ok.task_id, ok.family, ok.status, ok.video_url) == (
        "a1",
        TaskFamily.ALEPH,
        TaskStatus.SUCCEEDED,
        ok.video_url,
    )
    failed = parse_callback({"code": 500, "msg": "internal", "data": None, "taskId": "a2"})
    assert failed.status is TaskStatus.FAILED
    assert failed.fail_message == "internal"


@pytest.mark.parametrize("body", [{}, {"code": 200, "data": {}}, "not json", None])
def test_callback_without_task_id_is_rejected(body: Any) -> None:
    with pytest.raises(ValueError):
        parse_callback(body)


def test_to_dict_is_plain_json_and_round_trips() -> None:
    import json

    task = parse_runway_record(RUNWAY_DETAIL_SUCCESS)
    data = task.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["state"] == "succeeded"
    assert data["completed_at"] == "2023-08-15T14:30:45+00:00"
    assert RunwayTask.from_dict(data) == task


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-08-15 14:30:45", datetime(2023, 8, 15, 14, 30, 45, tzinfo=UTC)),
        ("2025-11-15T12:00:00Z", datetime(2025, 11, 15, 12, tzinfo=UTC)),
        ("2025-11-15T14:00:00+02:00", datetime(2025, 11, 15, 12, tzinfo=UTC)),
        (1763208000, datetime(2025, 11, 15, 12, tzinfo=UTC)),
        (1763208000000, datetime(2025, 11, 15, 12, tzinfo=UTC)),
        ("not a time", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected
