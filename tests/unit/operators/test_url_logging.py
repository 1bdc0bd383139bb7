"""A signed video URL is logged without its query string; the full URL stays in the result only."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

SIGNED = "https://cdn.test/r/task-1.mp4?token=SECRET-LOG-TOKEN&expires=1"


def test_success_log_line_has_no_query_string(
    hook: mock.MagicMock,
    context: dict[str, Any],
    make_task: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook.get_task.return_value = make_task(video_url=SIGNED)
    op = RunwayGenerateOperator(task_id="gen", prompt="A fox in the snow", poll_interval=0.01)
    op.hook = hook
    with caplog.at_level(logging.DEBUG):
        result = op.execute(context)
    assert result["video_url"] == SIGNED
    # Airflow 3 task loggers write through structlog to stdout; Airflow 2's reach caplog.
    captured = capsys.readouterr()
    logged = "\n".join([*(record.getMessage() for record in caplog.records), captured.out, captured.err])
    assert "Runway task task-1 succeeded: https://cdn.test/r/task-1.mp4" in logged, logged
    assert "SECRET-LOG-TOKEN" not in logged
