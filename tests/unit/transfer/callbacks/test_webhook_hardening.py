"""What a callback receiver can be sent: nothing unsigned reaches a DAG run, no body shape crashes it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_provider_runway.core import webhooks
from airflow_provider_runway.core.results import TaskFamily, TaskStatus
from airflow_provider_runway.core.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerificationError,
    compute_signature,
    parse_callback_body,
    verify_webhook,
)
from airflow_provider_runway.transfer.callbacks import callback_run_request, verify_runway_callback

KEY = "whsec-hardening-key-5e2b"
NOW = 1_767_000_000
TASK_ID = "t-1"
#: Headers correctly signed for TASK_ID at NOW: a body that names TASK_ID gets past the signature.
SIGNED = {SIGNATURE_HEADER: compute_signature(KEY, TASK_ID, NOW), TIMESTAMP_HEADER: str(NOW)}
DEEP_STRING = json.dumps({"code": 200, "msg": "ok", "data": '{"a":' * 5000 + "1" + "}" * 5000, "taskId": TASK_ID})

#: Bodies of every shape a sender may try; each must end as a WebhookVerificationError, nothing else.
HOSTILE_BODIES: list[Any] = [
    b"[" * 100_000,
    b"{" * 100_000,
    b'{"a":' * 100_000,
    b"[" * 33 + b"]" * 33,
    ('{"taskId": "t-1", "data": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
    DEEP_STRING.encode(),
    b"",
    b"null",
    b"1e999999",
    b"NaN",
    b"1" * 5000,
    b'"\\ud800"',
    b"\xff\xfe\x00",
    b'{"taskId": {"nested": 1}}',
    b'{"taskId": 5}',
    b'{"taskId": ["t-1"]}',
    b'{"taskId": "t 1"}',
    b'{"taskId": "t-1\\u0000"}',
    ('{"taskId": "' + "x" * 200 + '"}').encode(),
    b'{"data": [1, 2]}',
    b'{"data": "t-1"}',
    b'{"data": {"task_id": null}}',
    b"[" + b'{"taskId": "t-1"}' + b"]",
    '{"taskId": "t-1", "code": "\u2028"'.encode(),
    None,
    12,
    ["t-1"],
    {"taskId": {"x": 1}},
    {"data": None},
    object(),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda b: "a plain object" if type(b) is object else repr(b)[:40])
def test_hostile_bodies_are_verification_errors(body: Any) -> None:
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(SIGNED, body, KEY, now=NOW)
    assert err.value.reason in ("malformed_body", "bad_signature")


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda b: "a plain object" if type(b) is object else repr(b)[:40])
def test_hostile_bodies_are_value_errors_when_only_parsed(body: Any) -> None:
    with pytest.raises(ValueError):
        parse_callback_body(body)


def test_a_hundred_thousand_brackets_are_a_clean_rejection() -> None:
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(SIGNED, b"[" * 100_000, KEY, now=NOW)
    assert err.value.reason == "malformed_body"
    assert "deeper" in err.value.message


def test_headers_are_checked_before_the_body() -> None:
    for headers, reason in [
        ({}, "missing_header"),
        ({SIGNATURE_HEADER: "x"}, "missing_header"),
        ({**SIGNED, TIMESTAMP_HEADER: "1_767_000_000"}, "bad_timestamp"),
        ({**SIGNED, TIMESTAMP_HEADER: str(NOW - 3600)}, "stale"),
        ({**SIGNED, TIMESTAMP_HEADER: str(NOW + 3600)}, "future"),
    ]:
        with pytest.raises(WebhookVerificationError) as err:
            verify_webhook(headers, b"[" * 100_000, KEY, now=NOW)
        assert err.value.reason == reason, headers


def test_the_body_is_interpreted_only_after_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    interpreted: list[Any] = []
    real = webhooks.parse_callback

    def spy(payload: Any) -> Any:
        interpreted.append(payload)
        return real(payload)

    monkeypatch.setattr(webhooks, "parse_callback", spy)
    body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": TASK_ID, "video_url": "https://x.test/v.mp4"}})
    forged = {**SIGNED, SIGNATURE_HEADER: compute_signature("attacker", TASK_ID, NOW)}
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(forged, body, KEY, now=NOW)
    assert err.value.reason == "bad_signature"
    assert interpreted == []
    assert verify_webhook(SIGNED, body, KEY, now=NOW).task_id == TASK_ID
    assert len(interpreted) == 1


def test_replay_protection_is_on_by_default() -> None:
    body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": TASK_ID, "video_url": "https://x.test/v.mp4"}})
    assert verify_webhook(SIGNED, body, KEY, now=NOW).task_id == TASK_ID
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(SIGNED, body, KEY, now=NOW + 1)
    assert err.value.reason == "replayed"
    # Turned off on request only.
    assert verify_webhook(SIGNED, body, KEY, now=NOW + 2, replay_cache=None).task_id == TASK_ID


def test_replay_protection_is_on_by_default_through_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "runway", "host": "http://127.0.0.1:9", "password": "k", "extra": {"webhook_secret": KEY}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": TASK_ID, "video_url": "https://x.test/v.mp4"}})
    verify_runway_callback(SIGNED, body, now=NOW)
    with pytest.raises(WebhookVerificationError) as err:
        verify_runway_callback(SIGNED, body, now=NOW)
    assert err.value.reason == "replayed"


def test_run_conf_carries_the_signed_id_and_the_operators_family_only() -> None:
    # A Runway-shaped body (data.task_id) for a callback the Aleph operator asked for: the body's
    # shape does not decide the family, and its unsigned state and message stay out of the run.
    body = json.dumps({"code": 500, "msg": "please re-run with evil=1", "data": {"task_id": TASK_ID}})
    task = verify_webhook(SIGNED, body, KEY, now=NOW, family="aleph")
    assert task.family is TaskFamily.ALEPH and task.status is TaskStatus.FAILED
    request = callback_run_request(task, family="aleph")
    assert request["conf"] == {"runway_task_id": TASK_ID, "family": "aleph"}
    assert "evil" not in json.dumps(request)
    with pytest.raises(TypeError):
        callback_run_request(task)  # type: ignore[call-arg]  # the family must come from the receiver


def test_the_family_is_checked() -> None:
    body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": TASK_ID, "video_url": "https://x.test/v.mp4"}})
    with pytest.raises(ValueError, match="family"):
        verify_webhook(SIGNED, body, KEY, now=NOW, family="veo")
    with pytest.raises(ValueError, match="family"):
        callback_run_request(TASK_ID, family="veo")


class TestWebhookSecretExtra:
    def test_the_new_extra_name_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "runway", "password": "k", "extra": {"webhook_secret": KEY}}
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
        body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": TASK_ID, "video_url": "https://x.test/v"}})
        assert verify_runway_callback(SIGNED, body, now=NOW).task_id == TASK_ID

    def test_the_old_extra_name_is_still_read_with_a_warning(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from airflow_provider_runway.hooks.runway import RunwayHook

        conn = {"conn_type": "runway", "password": "k", "extra": {"webhook_hmac_key": KEY}}
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
        with caplog.at_level(logging.WARNING):
            assert RunwayHook().get_webhook_hmac_key() == KEY
        captured = capsys.readouterr()
        logged = "\n".join([caplog.text, captured.out, captured.err])
        assert "rename the extra webhook_hmac_key to webhook_secret" in logged
        assert KEY not in logged

    def test_the_new_name_wins_and_is_stripped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow_provider_runway.hooks.runway import RunwayHook

        conn = {
            "conn_type": "runway",
            "password": "k",
            "extra": {"webhook_secret": f"{KEY}\n", "webhook_hmac_key": "x"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
        assert RunwayHook().get_webhook_hmac_key() == KEY

    def test_airflow_masks_the_extra_the_provider_declares(self) -> None:
        """Airflow hides an extra's value in its connection API and UI when the name looks sensitive."""
        from airflow.providers.common.compat.sdk import redact

        from airflow_provider_runway.get_provider_info import get_provider_info

        [conn_type] = get_provider_info()["connection-types"]
        secret_fields = [
            name for name, field in conn_type["conn-fields"].items() if field["schema"].get("format") == "password"
        ]
        assert secret_fields, "the provider declares no secret extra"
        for name in secret_fields:
            assert redact({name: "value-to-hide"}) == {name: "***"}, f"Airflow shows the extra {name} in clear"
            assert redact({f"extra__runway__{name}": "value-to-hide"}) == {f"extra__runway__{name}": "***"}


class TestPlainHttpCallbackUrl:
    def test_message(self) -> None:
        assert webhooks.plain_http_callback_warning("https://hooks.example.com/cb") is None
        assert webhooks.plain_http_callback_warning(None) is None
        warning = webhooks.plain_http_callback_warning("http://hooks.example.com/cb?token=abc")
        assert warning is not None and "hooks.example.com" in warning and "https" in warning
        assert "token=abc" not in warning

    @pytest.mark.parametrize(
        ("url", "warned"), [("http://hooks.example.com/cb", True), ("https://h.example/cb", False)]
    )
    def test_the_operator_warns_when_it_builds_the_request(
        self, url: str, warned: bool, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from airflow_provider_runway.core.models import DEFAULT_LIMITS
        from airflow_provider_runway.operators.runway import RunwayGenerateOperator

        op = RunwayGenerateOperator(task_id="gen", prompt="A boat", callback_url=url)
        with caplog.at_level(logging.DEBUG):
            request = op.build_request(DEFAULT_LIMITS)
        captured = capsys.readouterr()
        logged = "\n".join([caplog.text, captured.out, captured.err])
        assert request.callback_url == url
        assert ("plain http" in logged) is warned, logged
