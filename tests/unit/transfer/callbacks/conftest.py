"""Fixtures of the callback tests: a fresh default replay cache for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_runway.core.webhooks import DEFAULT_REPLAY_CACHE


@pytest.fixture(autouse=True)
def fresh_default_replay_cache() -> Iterator[None]:
    """Replay protection is on by default and process-wide; tests that reuse a signed callback start clean."""
    DEFAULT_REPLAY_CACHE.clear()
    yield
    DEFAULT_REPLAY_CACHE.clear()
