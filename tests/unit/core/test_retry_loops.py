"""The retry loops every HTTP call goes through: the first attempt outside tenacity, the rest tenacity's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_runway.core.errors import RunwayApiError, RunwayAuthError, RunwayUnavailableError
from airflow_provider_runway.core.retry import acall_with_retries, call_with_retries, read_may_retry


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: Any, *args: Any) -> None:
        self.lines.append(msg % args)


def transient() -> RunwayApiError:
    return RunwayUnavailableError("server error", code=503)


def flaky(failures: list[BaseException]) -> tuple[list[int], Any]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    return calls, attempt


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_failures_are_retried_with_tenacitys_numbering_and_waits(mode: str) -> None:
    calls, attempt = flaky([transient(), transient()])
    log, slept = Log(), []
    kwargs: dict[str, Any] = {"policy": read_may_retry, "retries": 3, "delay": 1.0, "log": log, "what": "GET /x"}
    if mode == "sync":
        result = call_with_retries(attempt, sleep=slept.append, **kwargs)
    else:

        async def attempt_async() -> str:
            return attempt()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        result = asyncio.run(acall_with_retries(attempt_async, sleep=sleep, **kwargs))
    assert result == "ok" and len(calls) == 3
    assert [line.split(": ")[0] for line in log.lines] == ["Runway API GET /x"] * 2
    assert ["retry 1 of 3" in log.lines[0], "retry 2 of 3" in log.lines[1]] == [True, True]
    assert len(slept) == 2 and slept[0] > 0 and slept[1] > slept[0]  # exponential back-off from the first failure


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retries_run_out_and_the_last_error_is_raised(mode: str) -> None:
    errors = [transient() for _ in range(3)]
    calls, attempt = flaky(list(errors))
    kwargs: dict[str, Any] = {"policy": read_may_retry, "retries": 2, "delay": 0.0, "log": Log(), "what": "GET /x"}
    with pytest.raises(RunwayApiError) as raised:
        if mode == "sync":
            call_with_retries(attempt, sleep=lambda s: None, **kwargs)
        else:

            async def attempt_async() -> str:
                return attempt()

            async def sleep(seconds: float) -> None:
                return None

            asyncio.run(acall_with_retries(attempt_async, sleep=sleep, **kwargs))
    assert len(calls) == 3 and raised.value is errors[2]


def test_an_error_the_policy_refuses_is_raised_at_once_and_zero_retries_means_one_attempt() -> None:
    refused = RunwayAuthError("bad key", code=401)
    calls, attempt = flaky([refused])
    with pytest.raises(RunwayAuthError):
        call_with_retries(attempt, policy=read_may_retry, retries=3, delay=0.0, log=Log(), what="GET /x")
    assert len(calls) == 1
    calls, attempt = flaky([transient()])
    with pytest.raises(RunwayApiError):
        call_with_retries(attempt, policy=read_may_retry, retries=0, delay=0.0, log=Log(), what="GET /x")
    assert len(calls) == 1
