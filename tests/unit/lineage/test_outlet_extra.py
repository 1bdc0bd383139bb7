"""The outlet event's ``extra``: which video arrived, where it is stored, as plain JSON without signed-link tokens."""

from __future__ import annotations

import json

from airflow_provider_runway.core.pricing import usage_of
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.operators._lineage import outlet_extra

SIGNED = "https://user:pw@tempfile.example/k/t-1.mp4?X-Amz-Signature=0123abcd&X-Amz-Credential=AKIA#frag"


def done(video_url: str | None = SIGNED) -> RunwayTask:
    return RunwayTask("t-1", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url=video_url)


def test_stored_video_extra_is_json_and_names_the_video() -> None:
    task = done()
    extra = outlet_extra(
        task, usage_of(task, duration=5, quality="720p"), {"video_path": "s3://b/v/t-1.mp4", "video_size": 9}
    )
    assert (
        json.loads(json.dumps(extra))
        == extra
        == {
            "runway_task_id": "t-1",
            "family": "runway",
            "duration": 5,
            "quality": "720p",
            "video_url": "https://tempfile.example/k/t-1.mp4",
            "credits": 60,
            "video_path": "s3://b/v/t-1.mp4",
            "video_size": 9,
        }
    )


def test_no_token_or_user_info_of_a_signed_link_reaches_the_event() -> None:
    task = done()
    text = json.dumps(outlet_extra(task, usage_of(task, duration=5, quality="720p"), {}))
    for secret in ("Signature", "0123abcd", "AKIA", "pw@", "frag"):
        assert secret not in text


def test_a_video_not_stored_has_no_path_keys() -> None:
    task = done("https://tempfile.example/t-1.mp4")
    extra = outlet_extra(task, usage_of(task, duration=10, quality="720p"), {"video_path": None})
    assert "video_path" not in extra and "video_size" not in extra
    assert extra["credits"] == 120
