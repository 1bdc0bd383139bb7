"""Unit tests of RunwayHook's synchronous API, HTTP mocked with ``responses``."""

from __future__ import annotations

import random
import uuid

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from airflow_provider_runway import __version__
from airflow_provider_runway.core.errors import (
    RunwayAuthError,
    RunwayCreateUncertainError,
    RunwayInsufficientCreditsError,
    RunwayNotFoundError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayTransportError,
    RunwayUnavailableError,
)
from airflow_provider_runway.core.models import AlephRequest, ExtendRequest, GenerateRequest
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.core.retry import backoff_delay
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.hooks.transport import build_base_url
from tests.unit.hooks.conftest import API_KEY, BASE, set_connection

GENERATE = f"{BASE}/api/v1/runway/generate"
EXTEND = f"{BASE}/api/v1/runway/extend"
ALEPH = f"{BASE}/api/v1/aleph/generate"
DETAIL = f"{BASE}/api/v1/runway/record-detail"
ALEPH_INFO = f"{BASE}/api/v1/aleph/record-info"
CREDIT = f"{BASE}/api/v1/chat/credit"
DOWNLOAD = f"{BASE}/api/v1/common/download-url"

RUNWAY_RECORD = {
    "taskId": "t-1",
    "parentTaskId": "",
    "state": "success",
    "generateTime": "2025-08-15 14:30:45",
    "videoInfo": {
        "videoId": "v-1",
        "taskId": "t-1",
        "videoUrl": "https://cdn.test/v.mp4",
        "imageUrl": "https://cdn.test/i.png",
    },
    "failCode": None,
    "failMsg": "",
    "expireFlag": 0,
}
ALEPH_RECORD = {
    "taskId": "a-1",
    "response": {
        "taskId": "a-1",
        "resultVideoUrl": "https://cdn.test/a.mp4",
        "resultImageUrl": "https://cdn.test/a.png",
    },
    "successFlag": 1,
    "errorCode": 0,
    "errorMessage": "",
}


def ok(data: object) -> dict:
    return {"code": 200, "msg": "success", "data": data}


def error_response(url: str, method: str, code: int, style: str, msg: str = "boom", **kwargs: object) -> None:
    """Register an error in one of KIE's two styles: the HTTP status, or HTTP 200 with the body code."""
    status = code if style == "http" else 200
    responses.add(method, url, json={"code": code, "msg": msg, "data": None}, status=status, **kwargs)


def connection_refused() -> requests.ConnectionError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, GENERATE, cause))  # type: ignore[arg-type]


def connection_dropped() -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))


STYLES = ["http", "body"]

# --------------------------------------------------------------------------- connection


class TestConnection:
    @pytest.mark.parametrize(
        ("host", "port", "extra", "expected"),
        [
            (None, None, {}, "https://api.kie.ai"),
            ("", None, {}, "https://api.kie.ai"),
            ("http://127.0.0.1:8089", None, {}, "http://127.0.0.1:8089"),
            ("https://api.kie.ai/", None, {}, "https://api.kie.ai"),
            ("api.kie.ai", None, {}, "https://api.kie.ai"),
            ("127.0.0.1", 8089, {"use_https": "false"}, "http://127.0.0.1:8089"),
            ("127.0.0.1", 8089, {"use_https": False}, "http://127.0.0.1:8089"),
            ("127.0.0.1", 8089, {"use_https": "true"}, "https://127.0.0.1:8089"),
            ("http://127.0.0.1:8089", 9999, {}, "http://127.0.0.1:8089"),
        ],
    )
    def test_build_base_url(self, host, port, extra, expected):
        assert build_base_url(host, port, extra) == expected

    def test_build_base_url_rejects_other_schemes(self):
        with pytest.raises(ValueError, match="http"):
            build_base_url("ftp://example.com", None, {})

    def test_json_form(self, monkeypatch):
        set_connection(
            monkeypatch,
            {
                "conn_type": "runway",
                "host": "http://127.0.0.1:8089",
                "password": API_KEY,
                "extra": {"read_timeout": 7, "webhook_hmac_key": "hmac-secret", "max_prompt_length": 900},
            },
        )
        hook = RunwayHook()
        assert hook.base_url == "http://127.0.0.1:8089"
        assert hook.get_webhook_hmac_key() == "hmac-secret"
        assert hook.get_validation_limits().max_prompt_length == 900
        assert hook._settings().read_timeout == 7

    def test_uri_form_with_use_https_false(self, monkeypatch):
        set_connection(
            monkeypatch,
            f"runway://:{API_KEY}@127.0.0.1:8089/?use_https=false&allowed_durations=5,10&retry_limit=2&connect_timeout=3",
        )
        hook = RunwayHook()
        assert hook.base_url == "http://127.0.0.1:8089"
        assert hook.get_validation_limits().durations == (5, 10)
        assert hook.get_webhook_hmac_key() is None
        settings = hook._settings()
        assert (settings.retry_limit, settings.connect_timeout, settings.api_key) == (2, 3.0, API_KEY)

    def test_uri_form_with_encoded_scheme(self, monkeypatch):
        set_connection(monkeypatch, f"runway://:{API_KEY}@http%3A%2F%2F127.0.0.1%3A8089")
        assert RunwayHook().base_url == "http://127.0.0.1:8089"

    def test_explicit_arguments_win_over_extra(self, monkeypatch):
        set_connection(
            monkeypatch,
            {"conn_type": "runway", "password": API_KEY, "extra": {"retry_limit": 9, "read_timeout": 50}},
        )
        settings = RunwayHook(retry_limit=1, timeout=4)._settings()
        assert (settings.retry_limit, settings.read_timeout) == (1, 4)
        assert RunwayHook()._settings().retry_limit == 9

    def test_bad_extra_number_names_the_key(self, monkeypatch):
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"read_timeout": "soon"}})
        with pytest.raises(ValueError, match="read_timeout"):
            RunwayHook()._settings()

    @responses.activate
    def test_missing_key_fails_before_any_request(self, monkeypatch):
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE})
        with pytest.raises(RunwayAuthError, match="no API key"):
            RunwayHook().get_credits()
        assert len(responses.calls) == 0

    def test_negative_retry_settings_are_refused(self):
        with pytest.raises(ValueError, match="retry_limit"):
            RunwayHook(retry_limit=-1)
        with pytest.raises(ValueError, match="retry_delay"):
            RunwayHook(retry_delay=-1)

    def test_ui_field_behaviour(self):
        behaviour = RunwayHook.get_ui_field_behaviour()
        assert behaviour["relabeling"]["password"] == "API Key"
        assert behaviour["hidden_fields"] == ["login"]
        assert behaviour["placeholders"]["host"].startswith("api.kie.ai")
        assert "webhook_secret" in behaviour["placeholders"]["extra"]

    def test_class_attributes(self):
        assert (RunwayHook.conn_name_attr, RunwayHook.default_conn_name, RunwayHook.conn_type) == (
            "runway_conn_id",
            "runway_default",
            "runway",
        )
        assert RunwayHook.hook_name == "Runway (KIE.ai)"


# --------------------------------------------------------------------------- happy paths


class TestCalls:
    @responses.activate
    def test_create_generate_sends_payload_and_headers(self, hook):
        request = GenerateRequest(prompt="a fox", duration=5, quality="1080p", aspect_ratio="9:16", seed=12345)
        responses.post(
            GENERATE,
            json=ok({"taskId": "t-1"}),
            match=[
                matchers.json_params_matcher(request.to_payload()),
                matchers.header_matcher(
                    {"Authorization": f"Bearer {API_KEY}", "User-Agent": f"airflow-provider-runway/{__version__}"}
                ),
            ],
        )
        assert hook.create_generate_task(request) == "t-1"

    @responses.activate
    def test_create_task_dispatches_on_type(self, hook):
        responses.post(GENERATE, json=ok({"taskId": "g"}))
        responses.post(
            EXTEND,
            json=ok({"taskId": "e"}),
            match=[matchers.json_params_matcher({"taskId": "g", "prompt": "more", "quality": "720p", "waterMark": ""})],
        )
        responses.post(ALEPH, json=ok({"taskId": "a"}))
        assert hook.create_task(GenerateRequest(prompt="p")) == "g"
        assert hook.create_task(ExtendRequest(source_task_id="g", prompt="more")) == "e"
        assert hook.create_task(AlephRequest(prompt="p", video_url="https://cdn.test/in.mp4")) == "a"
        with pytest.raises(TypeError, match="GenerateRequest"):
            hook.create_task({"prompt": "p"})  # type: ignore[arg-type]

    @responses.activate
    def test_get_task_runway(self, hook):
        responses.get(DETAIL, json=ok(RUNWAY_RECORD), match=[matchers.query_param_matcher({"taskId": "t-1"})])
        task = hook.get_task("t-1")
        assert (task.task_id, task.family, task.status) == ("t-1", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED)
        assert task.video_url == "https://cdn.test/v.mp4"

    @responses.activate
    def test_get_task_aleph(self, hook):
        responses.get(ALEPH_INFO, json=ok(ALEPH_RECORD), match=[matchers.query_param_matcher({"taskId": "a-1"})])
        task = hook.get_task("a-1", family="aleph")
        assert (task.family, task.status, task.video_url) == (
            TaskFamily.ALEPH,
            TaskStatus.SUCCEEDED,
            "https://cdn.test/a.mp4",
        )

    @responses.activate
    def test_get_task_pending(self, hook):
        responses.get(DETAIL, json=ok({"taskId": "t-2", "state": "queueing"}))
        assert hook.get_task("t-2").status is TaskStatus.PENDING

    def test_get_task_rejects_bad_ids_and_families_locally(self, hook):
        with pytest.raises(ValueError, match="task_id"):
            hook.get_task("has space")
        with pytest.raises(ValueError, match="family"):
            hook.get_task("t-1", family="sora")

    @responses.activate
    def test_credits_and_download_url(self, hook):
        responses.get(CREDIT, json=ok(100))
        responses.post(
            DOWNLOAD,
            json=ok("https://dl.test/file.mp4?sig=1"),
            match=[matchers.json_params_matcher({"url": "https://cdn.test/v.mp4"})],
        )
        assert hook.get_credits() == 100
        assert hook.get_download_url("https://cdn.test/v.mp4") == "https://dl.test/file.mp4?sig=1"

    def test_download_url_validates_locally(self, hook):
        with pytest.raises(ValueError, match="url"):
            hook.get_download_url("not a url")

    @responses.activate
    def test_test_connection(self, hook):
        responses.get(CREDIT, json=ok(42))
        assert hook.test_connection() == (True, f"Connected to {BASE}: 42 credits remaining")

    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    def test_test_connection_failure(self, hook, style):
        error_response(CREDIT, "GET", 401, style, msg="Invalid API key")
        success, message = hook.test_connection()
        assert not success
        assert "Invalid API key" in message and "401" in message
        assert API_KEY not in message
        assert len(responses.calls) == 1


# --------------------------------------------------------------------------- errors


class TestErrors:
    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    @pytest.mark.parametrize(
        ("code", "error"),
        [
            (400, RunwayRequestRejectedError),
            (401, RunwayAuthError),
            (402, RunwayInsufficientCreditsError),
            (404, RunwayNotFoundError),
            (422, RunwayRequestRejectedError),
            (451, RunwayRequestRejectedError),
            (505, RunwayRequestRejectedError),
        ],
    )
    def test_non_retryable_errors_both_styles(self, hook, sleeps, style, code, error):
        error_response(DETAIL, "GET", code, style, msg="nope")
        with pytest.raises(error) as caught:
            hook.get_task("t-1")
        assert caught.value.code == code
        assert "nope" in str(caught.value)
        assert len(responses.calls) == 1 and sleeps.calls == []

    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    def test_create_non_retryable_errors_are_raised_as_is(self, hook, style):
        error_response(GENERATE, "POST", 402, style, msg="Insufficient credits")
        with pytest.raises(RunwayInsufficientCreditsError, match="Insufficient credits"):
            hook.create_generate_task(GenerateRequest(prompt="p"))
        assert len(responses.calls) == 1

    @responses.activate
    def test_error_body_is_capped_and_truncated(self, hook):
        responses.get(DETAIL, body="<html>" + "x" * 2_000_000, status=404)
        with pytest.raises(RunwayNotFoundError) as caught:
            hook.get_task("t-1")
        assert len(str(caught.value)) < 600

    @responses.activate
    def test_non_json_success_is_a_protocol_error_after_retries(self, hook, sleeps):
        responses.get(DETAIL, body="<html>maintenance</html>", status=200)
        with pytest.raises(RunwayProtocolError):
            hook.get_task("t-1")
        assert len(responses.calls) == 4 and len(sleeps.calls) == 3

    @responses.activate
    def test_null_task_data_is_a_protocol_error(self, hook):
        responses.get(DETAIL, json=ok(None))
        with pytest.raises(RunwayProtocolError, match="no task data"):
            RunwayHook(retry_limit=0).get_task("t-1")
        assert len(responses.calls) == 1


# --------------------------------------------------------------------------- retries


class TestRetries:
    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    def test_read_retries_429_honouring_retry_after(self, hook, sleeps, style):
        error_response(CREDIT, "GET", 429, style, msg="slow down", headers={"Retry-After": "7"})
        responses.get(CREDIT, json=ok(5))
        assert hook.get_credits() == 5
        assert len(responses.calls) == 2
        assert len(sleeps.calls) == 1 and 7 <= sleeps.calls[0] <= 8

    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    @pytest.mark.parametrize("code", [455, 500, 503])
    def test_read_retries_unavailable(self, hook, sleeps, style, code):
        error_response(DETAIL, "GET", code, style)
        error_response(DETAIL, "GET", code, style)
        responses.get(DETAIL, json=ok(RUNWAY_RECORD))
        assert hook.get_task("t-1").status is TaskStatus.SUCCEEDED
        assert len(responses.calls) == 3 and len(sleeps.calls) == 2

    @responses.activate
    def test_read_retries_transport_errors(self, hook):
        responses.get(DETAIL, body=requests.ReadTimeout("read timed out"))
        responses.get(DETAIL, body=connection_dropped())
        responses.get(DETAIL, json=ok(RUNWAY_RECORD))
        assert hook.get_task("t-1").video_url == "https://cdn.test/v.mp4"

    @responses.activate
    def test_read_gives_up_after_retry_limit(self, hook, sleeps):
        for _ in range(10):
            responses.get(DETAIL, json={"code": 500, "msg": "server error"}, status=500)
        with pytest.raises(RunwayUnavailableError):
            hook.get_task("t-1")
        assert len(responses.calls) == 4  # retry_limit=3: one attempt and three retries
        assert len(sleeps.calls) == 3

    @responses.activate
    def test_retry_limit_zero_means_one_attempt(self, runway_conn):
        responses.get(CREDIT, json={"code": 500, "msg": "x"}, status=500)
        with pytest.raises(RunwayUnavailableError):
            RunwayHook(retry_limit=0).get_credits()
        assert len(responses.calls) == 1

    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    @pytest.mark.parametrize("code", [429, 455])
    def test_create_retried_when_nothing_was_created(self, hook, style, code):
        error_response(GENERATE, "POST", code, style)
        responses.post(GENERATE, json=ok({"taskId": "t-9"}))
        assert hook.create_generate_task(GenerateRequest(prompt="p")) == "t-9"
        assert len(responses.calls) == 2

    @responses.activate
    @pytest.mark.parametrize("failure", [connection_refused, lambda: requests.ConnectTimeout("connect timed out")])
    def test_create_retried_when_never_sent(self, hook, failure):
        responses.post(GENERATE, body=failure())
        responses.post(GENERATE, json=ok({"taskId": "t-9"}))
        assert hook.create_generate_task(GenerateRequest(prompt="p")) == "t-9"
        assert len(responses.calls) == 2

    @responses.activate
    @pytest.mark.parametrize("style", STYLES)
    @pytest.mark.parametrize("code", [500, 502, 503])
    def test_create_not_retried_after_5xx(self, hook, sleeps, style, code):
        error_response(GENERATE, "POST", code, style, msg="internal error")
        responses.post(GENERATE, json=ok({"taskId": "second"}))
        with pytest.raises(RunwayCreateUncertainError) as caught:
            hook.create_generate_task(GenerateRequest(prompt="p"))
        message = str(caught.value)
        assert "may have been created" in message and "not retried" in message
        assert "internal error" in message
        assert len(responses.calls) == 1 and sleeps.calls == []

    @responses.activate
    @pytest.mark.parametrize(
        "failure",
        [lambda: requests.ReadTimeout("read timed out"), connection_dropped],
        ids=["read-timeout", "dropped"],
    )
    def test_create_not_retried_after_send(self, hook, failure):
        responses.post(GENERATE, body=failure())
        responses.post(GENERATE, json=ok({"taskId": "second"}))
        with pytest.raises(RunwayCreateUncertainError, match="may have been created") as caught:
            hook.create_aleph_task(AlephRequest(prompt="p", video_url="https://cdn.test/in.mp4"))
        assert isinstance(caught.value.__cause__, RunwayTransportError)
        assert len(responses.calls) == 1

    @responses.activate
    def test_create_without_task_id_is_uncertain(self, hook):
        responses.post(GENERATE, json=ok({}))
        with pytest.raises(RunwayCreateUncertainError, match="no taskId"):
            hook.create_generate_task(GenerateRequest(prompt="p"))
        assert len(responses.calls) == 1

    @responses.activate
    def test_create_gives_up_on_persistent_429_without_uncertainty(self, hook):
        for _ in range(5):
            responses.post(GENERATE, json={"code": 429, "msg": "rate"}, status=429)
        with pytest.raises(RunwayRateLimitedError):
            hook.create_generate_task(GenerateRequest(prompt="p"))
        assert len(responses.calls) == 4

    @pytest.mark.parametrize(
        ("jitter", "expected"),
        [
            # Retries 1 to 7 with retry_delay=2: doubling from 2 s, capped at a minute...
            (lambda low, high: high, [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
            # ...and jitter takes off at most half.
            (lambda low, high: low, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        ],
        ids=["no-jitter", "most-jitter"],
    )
    def test_backoff_doubles_from_the_retry_delay_up_to_a_minute(self, monkeypatch, jitter, expected):
        monkeypatch.setattr(random, "uniform", jitter)
        assert [backoff_delay(attempt, 2.0) for attempt in range(1, 8)] == expected

    def test_backoff_jitter_spreads_the_retries_over_the_upper_half(self):
        delays = [backoff_delay(4, 2.0) for _ in range(200)]
        assert all(8.0 <= delay <= 16.0 for delay in delays)
        assert min(delays) < 9.0 and max(delays) > 15.0  # not lock step: each bound missed with p < 1e-11

    def test_backoff_honours_retry_after_up_to_five_minutes(self, monkeypatch):
        monkeypatch.setattr(random, "uniform", lambda low, high: low)
        assert backoff_delay(1, 0.0, retry_after=12) == 12.0
        assert backoff_delay(1, 0.0, retry_after=10_000) == 300.0
        assert backoff_delay(3, 2.0, retry_after=1) == 4.0  # a shorter Retry-After does not shorten the back-off

    @responses.activate
    def test_read_retries_sleep_the_backoff(self, runway_conn, sleeps, monkeypatch):
        monkeypatch.setattr(random, "uniform", lambda low, high: high)
        hook = RunwayHook(retry_limit=3, retry_delay=2.0)
        hook._sleep = sleeps
        for _ in range(3):
            responses.get(DETAIL, json={"code": 500, "msg": "server error"}, status=500)
        responses.get(DETAIL, json=ok(RUNWAY_RECORD))
        assert hook.get_task("t-1").status is TaskStatus.SUCCEEDED
        assert sleeps.calls == [2.0, 4.0, 8.0]


# --------------------------------------------------------------------------- secrets


class TestKeyNeverLeaks:
    @responses.activate
    def test_key_absent_from_all_output_of_failing_calls(self, monkeypatch, sleeps, stdlib_log, caplog, capfd):
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": API_KEY})
        structlog_hook = RunwayHook(retry_limit=2, retry_delay=0)
        debug_hook = stdlib_log(RunwayHook(retry_limit=2, retry_delay=0))
        errors: list[BaseException] = []
        for hook in (structlog_hook, debug_hook):
            hook._sleep = sleeps
            responses.get(CREDIT, json={"code": 401, "msg": f"Invalid key Bearer {API_KEY}"}, status=401)
            responses.get(DETAIL, json={"code": 500, "msg": "down"}, status=500)
            responses.post(GENERATE, body=requests.ReadTimeout(f"timed out; Authorization: Bearer {API_KEY}"))
            responses.post(DOWNLOAD, body=connection_refused())
            calls = [
                hook.get_credits,
                lambda h=hook: h.get_task("t-1"),
                lambda h=hook: h.create_generate_task(GenerateRequest(prompt="p")),
                lambda h=hook: h.get_download_url("https://cdn.test/v.mp4"),
            ]
            for call in calls:
                with pytest.raises(Exception) as caught:
                    call()
                errors.append(caught.value)
            errors.append(Exception(hook.test_connection()[1]))
            responses.reset()
        out, err = capfd.readouterr()
        texts = [
            caplog.text,
            out,
            err,
            repr(structlog_hook),
            repr(structlog_hook._settings()),
            repr(structlog_hook._session().auth),
        ]
        texts += [f"{e!s} {e!r} {e.__cause__!s} {e.__cause__!r}" for e in errors]
        assert caplog.text, "the stdlib-routed hook should have logged something"
        assert "Runway API" in caplog.text and "/api/v1/runway/record-detail" in caplog.text
        for text in texts:
            assert API_KEY not in text
        assert "Bearer ***" in str(errors[0])  # the echoed key was scrubbed, the rest kept

    @responses.activate
    def test_log_lines_carry_method_path_task_status_and_time(self, hook, stdlib_log, caplog):
        stdlib_log(hook)
        responses.get(DETAIL, json=ok(RUNWAY_RECORD))
        responses.post(GENERATE, json=ok({"taskId": "t-77"}))
        hook.get_task("t-1")
        hook.create_generate_task(GenerateRequest(prompt="p"))
        assert "GET /api/v1/runway/record-detail -> HTTP 200 in" in caplog.text
        assert "[task t-1]" in caplog.text
        assert "POST /api/v1/runway/generate created task t-77 in" in caplog.text
        assert " ms" in caplog.text


class TestExtraForms:
    def test_prefixed_extra_keys_of_airflow_2_forms_are_not_read(self, monkeypatch):
        extra = {"extra__runway__read_timeout": 12, "read_timeout": 3}
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": extra})
        assert RunwayHook()._settings().read_timeout == 3
        set_connection(
            monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"extra__runway__read_timeout": 12}}
        )
        assert RunwayHook()._settings().read_timeout == 30

    def test_webhook_key_is_registered_with_the_secrets_masker(self, monkeypatch):
        from airflow.providers.common.compat.sdk import redact

        # unique, and upper case: the masker is process-global and 2.11 also masks short secrets of other tests
        secret = f"WHK-{uuid.uuid4().hex.upper()}"
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"webhook_hmac_key": secret}})
        assert secret in redact(f"careless line with {secret}")
        assert RunwayHook().get_webhook_hmac_key() == secret
        assert secret not in redact(f"careless line with {secret}")
