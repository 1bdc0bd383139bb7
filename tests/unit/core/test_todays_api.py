"""What KIE's newer documentation says that the seeds did not (issue 14, "Today's API").

Each test pins one fact of ``kie-runway-api.md`` ("Newer facts") and fails on the code before it.
"""

from __future__ import annotations

import json
from datetime import timezone

import pytest

from airflow_provider_runway.core import (
    RunwayConcurrencyLimitError,
    RunwayFeatureUnavailableError,
    RunwayNotExtendableError,
    RunwayNotFoundError,
    RunwayRequestRejectedError,
    RunwayUnavailableError,
    parse_envelope,
)
from airflow_provider_runway.core.wire import (
    ALEPH_GENERATE_PATH,
    ALEPH_RECORD_INFO_PATH,
    RUNWAY_EXTEND_PATH,
    RUNWAY_GENERATE_PATH,
    RUNWAY_RECORD_DETAIL_PATH,
)

UTC = timezone.utc
CONCURRENCY = "Reached the limit for concurrent generations"
NOT_EXTENDABLE = "Video generated after 1080P cannot be extended"


def _body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": None}).encode()


def _raise(code: int, msg: str, path: str, http_status: int = 200) -> Exception:
    with pytest.raises(Exception) as caught:
        parse_envelope(http_status, _body(code, msg), method="POST" if "generate" in path else "GET", path=path)
    return caught.value


# -- 408 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 408])
def test_408_is_a_transient_unavailable_error(http_status: int) -> None:
    """Fact: code 408 ("upstream returned nothing for over 10 minutes") is transient, not a rejection.

    As a RunwayUnavailableError other than 455, the hook retries it on reads (``retryable``) and
    reports a create as outcome unknown, exactly as it does a 500.
    """
    error = _raise(408, "upstream returned nothing for over 10 minutes", RUNWAY_RECORD_DETAIL_PATH, http_status)
    assert isinstance(error, RunwayUnavailableError)
    assert error.retryable and error.code == 408
    assert not isinstance(error, RunwayRequestRejectedError)


def test_408_on_an_aleph_create_is_not_taken_for_aleph_being_gone() -> None:
    """Fact: 408 is transient on every endpoint, Aleph's included."""
    error = _raise(408, "upstream returned nothing for over 10 minutes", ALEPH_GENERATE_PATH)
    assert type(error) is RunwayUnavailableError


# -- extending a 1080p video -----------------------------------------------------------------------


def test_refused_extension_is_recognised_and_not_retryable() -> None:
    """Fact: KIE refuses to extend a 1080p video ("Video generated after 1080P cannot be extended")."""
    error = _raise(400, NOT_EXTENDABLE, RUNWAY_EXTEND_PATH)
    assert isinstance(error, RunwayNotExtendableError)
    assert isinstance(error, RunwayRequestRejectedError) and not error.retryable
    assert NOT_EXTENDABLE in str(error) and "720p" in str(error)


# -- concurrency limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 400])
def test_create_refused_for_the_concurrency_limit_is_its_own_retryable_error(http_status: int) -> None:
    """Fact: code 400 "Reached the limit for concurrent generations" created (and charged) nothing."""
    error = _raise(400, CONCURRENCY, RUNWAY_GENERATE_PATH, http_status)
    assert isinstance(error, RunwayConcurrencyLimitError)
    assert isinstance(error, RunwayRequestRejectedError) and error.retryable and error.code == 400
    other = _raise(400, "Inappropriate content detected", RUNWAY_GENERATE_PATH)
    assert type(other) is RunwayRequestRejectedError and not other.retryable


# -- Aleph not available ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg"),
    [
        (404, "Not Found"),
        (505, "feature disabled"),
        (422, "The model is no longer available"),
        (400, "Runway Aleph has been discontinued"),
        (500, "This model has been discontinued"),
        (422, "model not found"),
    ],
)
def test_aleph_not_available_is_a_permanent_distinct_error(code: int, msg: str) -> None:
    """Fact: KIE marks Aleph discontinued; its endpoint may answer 404, 505 or a body saying so."""
    error = _raise(code, msg, ALEPH_GENERATE_PATH)
    assert isinstance(error, RunwayFeatureUnavailableError)
    assert not error.retryable
    assert "Aleph is not served for this account" in str(error)


@pytest.mark.parametrize(
    ("code", "msg", "path", "cls"),
    [
        (404, "task not found", ALEPH_RECORD_INFO_PATH, RunwayNotFoundError),
        (422, "aspectRatio 21:9 is not supported for this video", ALEPH_GENERATE_PATH, RunwayRequestRejectedError),
        (500, "Service temporarily not available", ALEPH_GENERATE_PATH, RunwayUnavailableError),
        (505, "feature disabled", RUNWAY_GENERATE_PATH, RunwayRequestRejectedError),
        (404, "Not Found", RUNWAY_GENERATE_PATH, RunwayNotFoundError),
    ],
)
def test_other_answers_are_not_taken_for_aleph_being_gone(code: int, msg: str, path: str, cls: type) -> None:
    """Fact: only Aleph's endpoints, with a 404/505 on create or a body saying so, mean Aleph is gone."""
    assert type(_raise(code, msg, path)) is cls
