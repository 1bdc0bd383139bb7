"""The leak scan itself: it must see a key in every place the secrets suite relies on."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from tests.harness.leaks import API_KEY, WEBHOOK_KEY, LeakWatch, captured_fds, count_leaks, count_leaks_in_bytes


def test_a_logged_key_is_counted_with_its_traceback() -> None:
    watch = LeakWatch()
    with watch.installed():
        try:
            raise ValueError(f"token={API_KEY}")
        except ValueError:
            logging.getLogger("leak.control").exception("request failed")
        logging.getLogger("leak.control").debug("hmac %s", WEBHOOK_KEY)
    assert watch.leaks() >= 3  # the traceback text, the record's own fields, the debug line


def test_text_written_to_the_file_descriptors_is_captured(request: pytest.FixtureRequest) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled(), captured_fds() as output:
        print(f"Authorization: Bearer {API_KEY}")
        sys.stderr.write(f"{WEBHOOK_KEY}\n")
        os.write(1, API_KEY.encode())
    assert count_leaks(*output) == 3


def test_exceptions_results_and_raw_bytes_are_counted() -> None:
    assert count_leaks(RuntimeError(API_KEY)) >= 1
    assert count_leaks({"headers": {"Authorization": f"Bearer {API_KEY}"}}) >= 1
    assert count_leaks_in_bytes({"airflow.db": b"\x00\x01" + WEBHOOK_KEY.encode() + b"\x02"}) == 1
    assert count_leaks("nothing to see", {"key": "***"}) == 0
