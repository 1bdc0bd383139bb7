"""A connection whose API key ends in a newline (a file-mounted secret) works and prints the key nowhere.

The simulator accepts only the key without its newline, so a run that succeeds proves the hook sent
the stripped key. Scanned: the task and triggerer output of ``dag.test()`` (file descriptors 1 and
2), every log record, the failure callbacks' exception messages, and the connection Test message.
A key with a control character inside is refused before any request, with a message that does not
contain it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.runway import RunwayGenerateOperator
from tests.harness.leaks import LeakWatch, captured_fds

pytestmark = pytest.mark.integration

#: Distinctive, so any appearance in output is this key and nothing else.
KEY = "sk-newline-key-4f8e1d0c7b2a9e63"
_ids = itertools.count()


@pytest.fixture
def key_sim(runway_sim_factory: Callable[..., Any]) -> Any:
    """A simulator that accepts only ``KEY`` (no newline), with fast phases."""
    return runway_sim_factory(api_keys=(KEY,))


def use_password(monkeypatch: pytest.MonkeyPatch, sim: Any, password: str) -> None:
    conn = {"conn_type": "runway", "host": sim.url, "password": password}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


@contextlib.contextmanager
def scanned(request: pytest.FixtureRequest) -> Iterator[tuple[LeakWatch, list[str]]]:
    """Every log record and everything written to fds 1 and 2 in the block (pytest's capture paused).

    The output list holds the captured text once the block has ended.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    watch = LeakWatch()
    with capture.global_and_fixture_disabled(), captured_fds() as output, watch.installed():
        yield watch, output


def assert_key_absent(watch: LeakWatch, output: list[str]) -> None:
    """The key is in no log record, kept message or output; and the scan saw something."""
    text = "\n".join([*watch.texts, *output])
    assert watch.texts and output and output[0].strip(), "nothing was captured: the scan would prove nothing"
    where = text.find(KEY)
    assert where < 0, f"the key was printed: ...{text[max(where - 300, 0) : where + 60]}..."


def dag_of_both_paths(**task_args: Any) -> DAG:
    """One generation waited for in the worker (requests) and one in the triggerer (aiohttp)."""
    with DAG(f"key_newline_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        for deferrable in (False, True):
            RunwayGenerateOperator(
                task_id=f"gen_{'deferred' if deferrable else 'sync'}",
                prompt="A lighthouse at dusk",
                deferrable=deferrable,
                poll_interval=0.05,
                **task_args,
            )
    return dag


def test_key_with_trailing_newline_runs_and_is_printed_nowhere(
    key_sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    run_dag: Callable[..., Any],
    ti_states: Callable[[Any], dict[str, tuple[str, int]]],
    failures: tuple[Callable[[Any], None], list[str]],
    request: pytest.FixtureRequest,
) -> None:
    use_password(monkeypatch, key_sim, f"{KEY}\n")
    with scanned(request) as (watch, output):
        dag_run = run_dag(dag_of_both_paths(on_failure_callback=failures[0]))
        ok, message = RunwayHook().test_connection()
        watch.keep(message, *failures[1])
    assert_key_absent(watch, output)
    assert ti_states(dag_run) == {"gen_sync": ("success", 1), "gen_deferred": ("success", 1)}, failures[1]
    assert ok, message
    counters = key_sim.counters()
    assert sum(counters["tasks_created"].values()) == 2 and counters["requests_total"] > 2


@pytest.mark.parametrize(
    "bad", ["\x07", "\n", " ", "\u00e9", "\u2028"], ids=["bell", "newline", "space", "e-acute", "line-separator"]
)
def test_key_with_control_characters_inside_is_refused_without_a_request(
    bad: str,
    key_sim: Any,
    monkeypatch: pytest.MonkeyPatch,
    run_dag: Callable[..., Any],
    ti_states: Callable[[Any], dict[str, tuple[str, int]]],
    failures: tuple[Callable[[Any], None], list[str]],
    request: pytest.FixtureRequest,
) -> None:
    head, tail = KEY[:10], KEY[10:]
    use_password(monkeypatch, key_sim, f"{head}{bad}{tail}")
    with scanned(request) as (watch, output):
        with DAG(f"key_ctl_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            RunwayGenerateOperator(task_id="gen", prompt="x", on_failure_callback=failures[0], poll_interval=0.05)
        dag_run = run_dag(dag)
        ok, message = RunwayHook().test_connection()
        watch.keep(message, *failures[1])
    assert ti_states(dag_run) == {"gen": ("failed", 1)}
    assert not ok and "not shown" in message, message
    assert failures[1] and all("not shown" in text for text in failures[1]), failures[1]
    text = "\n".join([*watch.texts, *output])
    assert output[0].strip() and tail not in text, "the key's characters after the bad one were printed"
    assert key_sim.counters()["requests_total"] == 0, "a request was sent with the broken key"
