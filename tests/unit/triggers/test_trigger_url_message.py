"""The trigger's success message names the video without the query string of a signed link."""

from __future__ import annotations

import pytest

from airflow_provider_runway.core.results import TaskStatus
from tests.unit.triggers.test_runway_trigger import FakeHook, make_trigger, only_event, task

SIGNED = "https://cdn.test/v.mp4?token=SECRET-EVENT-TOKEN"


@pytest.mark.asyncio
async def test_success_message_has_no_query_string(monkeypatch: pytest.MonkeyPatch) -> None:
    done = task(TaskStatus.SUCCEEDED, raw_state="success", video_url=SIGNED)
    event = await only_event(make_trigger(monkeypatch, FakeHook(done)))
    assert event["status"] == "success"
    assert event["message"] == "Runway task t-1 succeeded: https://cdn.test/v.mp4"
    assert event["task"]["video_url"] == SIGNED  # the data keeps the link; only the message is shortened
