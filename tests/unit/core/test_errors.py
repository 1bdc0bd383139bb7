from __future__ import annotations

import json

import pytest

from airflow_provider_runway.core import (
    RunwayAuthError,
    RunwayGenerationError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayUnavailableError,
    parse_envelope,
)
from airflow_provider_runway.core.errors import MAX_QUOTED_BODY, parse_retry_after

MAPPING = [
    (401, RunwayAuthError, False),
    (402, RunwayInsufficientCreditsError, False),
    (400, RunwayRequestRejectedError, False),
    (422, RunwayRequestRejectedError, False),
    (451, RunwayRequestRejectedError, False),
    (505, RunwayRequestRejectedError, False),
    (404, RunwayNotFoundError, False),
    (429, RunwayRateLimitedError, True),
    (455, RunwayUnavailableError, True),
    (500, RunwayUnavailableError, True),
    (503, RunwayUnavailableError, True),
    (501, RunwayGenerationError, False),
]


def _body(code: int, msg: str = "boom") -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": None}).encode()


@pytest.mark.parametrize(("code", "cls", "retryable"), MAPPING)
def test_http_status_style(code: int, cls: type[Exception], retryable: bool) -> None:
    with pytest.raises(cls) as excinfo:
        parse_envelope(code, _body(code), method="GET", path="/p")
    error = excinfo.value
    assert error.code == code  # type: ignore[attr-defined]
    assert error.http_status == code  # type: ignore[attr-defined]
    assert error.retryable is retryable  # type: ignore[attr-defined]
    assert "boom" in str(error) and "GET /p" in str(error)


@pytest.mark.parametrize(("code", "cls", "retryable"), MAPPING)
def test_body_code_style(code: int, cls: type[Exception], retryable: bool) -> None:
    with pytest.raises(cls) as excinfo:
        parse_envelope(200, _body(code))
    assert excinfo.value.code == code  # type: ignore[attr-defined]
    assert excinfo.value.http_status == 200  # type: ignore[attr-defined]
    assert excinfo.value.retryable is retryable  # type: ignore[attr-defined]


def test_body_code_wins_over_http_status() -> None:
    with pytest.raises(RunwayInsufficientCreditsError):
        parse_envelope(400, _body(402))


def test_success_returns_data() -> None:
    assert parse_envelope(200, b'{"code":200,"msg":"success","data":{"taskId":"t"}}') == {"taskId": "t"}
    assert parse_envelope(200, '{"code":200,"msg":"success","data":100}') == 100


def test_string_body_code_is_accepted() -> None:
    with pytest.raises(RunwayAuthError):
        parse_envelope(200, b'{"code":"401","msg":"nope"}')


@pytest.mark.parametrize("body", [b"<html><body>Bad Gateway</body></html>", b"", b"{not json", b"[1,2]"])
def test_non_envelope_on_success_status_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(RunwayProtocolError) as excinfo:
        parse_envelope(200, body)
    assert excinfo.value.retryable


def test_html_error_page_uses_the_http_status() -> None:
    with pytest.raises(RunwayUnavailableError) as excinfo:
        parse_envelope(502, b"<html><h1>502 Bad Gateway</h1></html>")
    assert "502 Bad Gateway" in str(excinfo.value)


def test_error_with_body_code_200_but_http_error_uses_http_status() -> None:
    with pytest.raises(RunwayUnavailableError):
        parse_envelope(503, _body(200))


def test_long_error_bodies_are_truncated() -> None:
    with pytest.raises(RunwayUnavailableError) as excinfo:
        parse_envelope(500, b"x" * 100_000)
    assert len(str(excinfo.value)) < MAX_QUOTED_BODY + 100


def test_rate_limit_carries_retry_after() -> None:
    with pytest.raises(RunwayRateLimitedError) as excinfo:
        parse_envelope(429, _body(429), retry_after="7")
    assert excinfo.value.retry_after == 7.0


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), (" 1.5 ", 1.5), ("-4", 0.0), ("soon", None), (None, None)])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected
