"""The depth check that runs before a callback's signature: linear time, on a body of bounded size.

Each case runs in a child process with a time limit, so a scan that is not linear fails the test
instead of holding the test run (the quadratic scan of the commit before took 3.2 s on 32 KB and
would take hours on 1 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_runway.core import webhooks
from airflow_provider_runway.core.webhooks import MAX_CALLBACK_BODY_BYTES, WebhookVerificationError, verify_webhook

#: The issue's bound for rejecting a hostile body; a linear scan of 128 KiB takes milliseconds.
MAX_SECONDS = 0.5
CHILD_TIMEOUT = 60


def _seconds_in_child(body_expression: str) -> tuple[float, str]:
    """Seconds ``verify_webhook`` spends on the body ``body_expression`` builds, measured in a child, and its reason."""
    code = textwrap.dedent(
        f"""
        import json, time
        from airflow_provider_runway.core.webhooks import WebhookVerificationError, verify_webhook
        body = {body_expression}
        headers = {{"X-Webhook-Signature": "x", "X-Webhook-Timestamp": "1767000000"}}
        started = time.perf_counter()
        try:
            verify_webhook(headers, body, "key", now=1767000000, replay_cache=None)
            reason = "accepted"
        except WebhookVerificationError as error:
            reason = error.reason
        print(json.dumps([time.perf_counter() - started, reason]))
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the pre-parse check of {body_expression} ran for more than {CHILD_TIMEOUT} s")
    seconds, reason = json.loads(done.stdout)
    return float(seconds), str(reason)


def test_a_one_megabyte_string_of_escaped_quotes_is_rejected_at_once() -> None:
    seconds, reason = _seconds_in_child("""b'"' + b'\\\\"' * (512 * 1024 - 1)""")
    assert reason == "malformed_body"
    assert seconds < MAX_SECONDS, f"1 MB hostile body took {seconds:.3f} s"


def test_escaped_quotes_as_large_as_the_cap_are_scanned_in_linear_time() -> None:
    pairs = (MAX_CALLBACK_BODY_BYTES - 1) // 2
    seconds, reason = _seconds_in_child(f"""b'"' + b'\\\\"' * {pairs}""")
    assert reason == "malformed_body"  # not valid JSON: the string never ends
    assert seconds < MAX_SECONDS, f"{MAX_CALLBACK_BODY_BYTES} byte hostile body took {seconds:.3f} s"


def test_the_cap_leaves_room_for_any_callback_kie_sends() -> None:
    long_url = "https://tempfile.aiquickdraw.com/v/" + "a" * 2000 + ".mp4?signature=" + "b" * 2000
    body = {"code": 200, "msg": "ok", "data": {"task_id": "t-1", "video_url": long_url, "image_url": long_url}}
    assert len(json.dumps(body)) * 8 < MAX_CALLBACK_BODY_BYTES
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook({"X-Webhook-Signature": "x", "X-Webhook-Timestamp": "1"}, json.dumps(body), "k", now=1)
    assert err.value.reason == "bad_signature"  # past the size and depth checks


def test_a_body_over_the_cap_is_refused_before_it_is_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_scan(text: str, limit: int = 0) -> bool:
        raise AssertionError("scanned a body over the cap")

    monkeypatch.setattr(webhooks, "_too_deep", must_not_scan)
    with pytest.raises(WebhookVerificationError, match="larger than 131072 bytes"):
        verify_webhook({"X-Webhook-Signature": "x", "X-Webhook-Timestamp": "1"}, "[" * 200_000, "k", now=1)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ('["' + "[" * 40 + '"]', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 40 + '"]', False),  # nor after an escaped quote inside it
        ('["\\\\"' + ", [" * 33, True),  # an escaped backslash ends before the quote that closes the string
        ('"' + '\\"' * 1000 + "[" * 40, False),  # an unterminated string hides the rest
    ],
)
def test_the_scan_counts_only_brackets_outside_strings(text: str, deep: bool) -> None:
    assert webhooks._too_deep(text) is deep
