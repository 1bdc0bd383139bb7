"""The operator extra link opens only absolute http(s) URLs."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from airflow_provider_runway.links.runway import RUNWAY_RESULT_URL_XCOM_KEY, RunwayTaskLink


def link_for(value: Any) -> str:
    operator = mock.MagicMock(runway_task_id="t-1")
    with mock.patch("airflow_provider_runway.links.runway.XCom.get_value", return_value=value) as get:
        url = RunwayTaskLink().get_link(operator, ti_key=mock.sentinel.key)
    get.assert_called_once_with(ti_key=mock.sentinel.key, key=RUNWAY_RESULT_URL_XCOM_KEY)
    return url


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox",
        " https://cdn.test/v.mp4",
        "//cdn.test/v.mp4",
        None,
        42,
    ],
)
def test_anything_but_an_http_url_gives_no_link(value: Any) -> None:
    assert link_for(value) == ""


@pytest.mark.parametrize(
    "value", ["https://cdn.test/v.mp4?sig=1", "http://127.0.0.1:8089/api/v1/runway/record-detail?taskId=t-1"]
)
def test_http_urls_are_linked(value: str) -> None:
    assert link_for(value) == value
