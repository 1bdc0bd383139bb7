"""The API key as read from the connection, and every transport failure redacted on both HTTP paths."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
import requests
import responses
import urllib3.exceptions

from airflow_provider_runway.core.errors import RunwayAuthError, RunwayTransportError
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.unit.hooks.aiohttp_compat import mock_aiohttp
from tests.unit.hooks.conftest import BASE, set_connection

#: Printable ASCII that every quoting style writes differently: backslash, quotes, slash, plus, equals.
KEY = "sk-hygiene\\'\"/+=-KEY-8c1e"
CREDIT = f"{BASE}/api/v1/chat/credit"
DETAIL = re.compile(rf"^{re.escape(BASE)}/api/v1/runway/record-detail\?taskId=t-1$")
RUNNING = {"code": 200, "msg": "success", "data": {"taskId": "t-1", "state": "generating"}}


def forms(key: str) -> set[str]:
    """Every way a message may quote the key."""
    return {
        key,
        repr(key)[1:-1],
        repr(key.encode())[2:-1],
        json.dumps(key)[1:-1],
        quote(key, safe=""),
        quote_plus(key),
        repr(f"{key}\n".encode())[2:-1],
    }


def assert_no_key(*texts: str, key: str = KEY) -> None:
    for text in texts:
        for form in forms(key):
            assert form not in text, f"{form!r} in {text!r}"


def hook_with_password(monkeypatch: pytest.MonkeyPatch, password: str) -> RunwayHook:
    set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": password})
    hook = RunwayHook(retry_limit=0)
    hook._log = logging.getLogger("tests.runway.hygiene")  # type: ignore[assignment]
    return hook


class TestReadingTheKey:
    @pytest.mark.parametrize("password", [f"{KEY}\n", f"{KEY}\r\n", f"  {KEY}\t", f"\n{KEY}\n\n"])
    @responses.activate
    def test_surrounding_whitespace_is_stripped_before_sending(
        self, monkeypatch: pytest.MonkeyPatch, password: str
    ) -> None:
        responses.add(responses.GET, CREDIT, json={"code": 200, "msg": "success", "data": 42})
        assert hook_with_password(monkeypatch, password).get_credits() == 42
        assert responses.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"

    @pytest.mark.asyncio
    async def test_the_async_path_sends_the_stripped_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hook = hook_with_password(monkeypatch, f"{KEY}\n")
        with mock_aiohttp() as mocked:
            mocked.get(DETAIL, payload=RUNNING)
            async with hook:
                assert hook._asession is not None
                assert hook._asession.headers["Authorization"] == f"Bearer {KEY}"
                task = await hook.aget_task("t-1")
        assert task.task_id == "t-1"

    @pytest.mark.parametrize("bad", ["\x00", "\x07", "\n", "\r", "\t", " ", "\x7f", "\u00e9", "\u2028", "\ufeff"])
    @responses.activate
    def test_a_key_with_bad_characters_inside_is_refused_without_a_request(
        self, monkeypatch: pytest.MonkeyPatch, bad: str
    ) -> None:
        broken = f"sk-left-part{bad}right-part-9d2f"
        hook = hook_with_password(monkeypatch, broken)
        with pytest.raises(RunwayAuthError) as err:
            hook.get_credits()
        assert "not shown" in str(err.value)
        assert "left-part" not in str(err.value) and "right-part" not in str(err.value)
        ok, message = hook.test_connection()
        assert not ok and "not shown" in message and "right-part" not in message
        assert len(responses.calls) == 0

    def test_clean_api_key(self) -> None:
        from airflow_provider_runway.hooks.transport import clean_api_key

        assert clean_api_key(f" {KEY}\n", "c") == KEY
        for empty in (None, "", " \n"):
            with pytest.raises(RunwayAuthError, match="no API key"):
                clean_api_key(empty, "c")


#: Failures raised from inside the HTTP client, each quoting the key the way real ones do.
SYNC_FAILURES = [
    ValueError(f"Invalid header value b'Bearer {KEY}\\n'"),
    ValueError(f"Invalid header value {f'Bearer {KEY}'.encode()!r}"),
    UnicodeEncodeError("latin-1", f"Bearer {KEY}\u2028", 7, 8, "ordinal not in range(256)"),
    http.client.InvalidURL(f"URL can't contain control characters. {quote(KEY)!r}"),
    urllib3.exceptions.ProtocolError("Connection aborted.", OSError(f"header {json.dumps(KEY)}")),
    OSError(f"proxy said: Authorization: Bearer {KEY}"),
    RuntimeError(f"unexpected: {quote_plus(KEY)}"),
    requests.exceptions.InvalidHeader(f"Invalid return character or leading space in header: Bearer {KEY}"),
]


class TestSyncTransportFailures:
    @pytest.mark.parametrize("failure", SYNC_FAILURES, ids=lambda e: type(e).__name__)
    def test_every_failure_is_a_redacted_transport_error(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        failure: Exception,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        hook = hook_with_password(monkeypatch, KEY)

        def explode(*args: object, **kwargs: object) -> requests.Response:
            raise failure

        monkeypatch.setattr(hook._session(), "request", explode)
        with pytest.raises(RunwayTransportError) as err:
            hook.get_credits()
        assert type(failure).__name__ in str(err.value)
        # Not chained either: a traceback printer would otherwise show the original message.
        assert err.value.__cause__ is None and err.value.__context__ is None
        ok, message = hook.test_connection()
        assert not ok
        assert_no_key(str(err.value), repr(err.value), message, caplog.text)

    def test_a_refusal_before_sending_lets_a_create_be_retried(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hook = hook_with_password(monkeypatch, KEY)

        def explode(*args: object, **kwargs: object) -> requests.Response:
            raise ValueError("Invalid header value")

        monkeypatch.setattr(hook._session(), "request", explode)
        with pytest.raises(RunwayTransportError) as err:
            hook.get_credits()
        assert err.value.request_sent is False


ASYNC_FAILURES = [
    ValueError(f"Newline or carriage return character detected in HTTP status message or header: Bearer {KEY}\n"),
    aiohttp.InvalidURL(f"http://x/?k={quote(KEY)}"),
    UnicodeEncodeError("utf-8", f"Bearer {KEY}\ud800", 7, 8, "surrogates not allowed"),
    RuntimeError(f"Authorization: Bearer {KEY!r}"),
    asyncio.TimeoutError(),
]


class TestAsyncTransportFailures:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("failure", ASYNC_FAILURES, ids=lambda e: type(e).__name__)
    async def test_every_failure_is_a_redacted_transport_error(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception
    ) -> None:
        caplog.set_level(logging.DEBUG)
        hook = hook_with_password(monkeypatch, KEY)
        with mock_aiohttp() as mocked:
            mocked.get(DETAIL, exception=failure)
            with pytest.raises(RunwayTransportError) as err:
                await hook.aget_task("t-1")
        assert err.value.__cause__ is None and err.value.__context__ is None
        assert_no_key(str(err.value), repr(err.value), caplog.text)


def test_redact_key_covers_every_quoting_and_bearer_values() -> None:
    from airflow_provider_runway.hooks.transport import redact_key

    text = " | ".join(sorted(forms(KEY))) + " | Authorization: Bearer some-other-token"
    redacted = redact_key(text, KEY)
    assert_no_key(redacted)
    assert "some-other-token" not in redacted and "Bearer ***" in redacted
    assert redact_key("nothing here", KEY) == "nothing here"
