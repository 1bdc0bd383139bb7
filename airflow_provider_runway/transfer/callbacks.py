"""Receive KIE callbacks in a web app and hand them to Airflow.

KIE POSTs a callback when a task ends (15 s timeout, a few retries). A receiver should:

1. verify it with :func:`verify_runway_callback` (headers, clock skew, signature, replay cache)
   and answer 401 on :class:`~airflow_provider_runway.core.webhooks.WebhookVerificationError`;
2. start Airflow work with :func:`trigger_dag_run` (Airflow 3 REST API), which passes only the
   signed task id and the family of the operator that asked for the callback (the receiver knows it
   from the URL it gave that operator, e.g. one path per family): the signature covers neither the
   state nor the URLs nor the body's shape, so the DAG reads the task from the API
   (``RunwayTaskSensor`` or ``RunwayHook.get_task``) before trusting anything;
3. answer 200 quickly, including for a redelivery (the DAG run id is derived from the task id, so a
   second trigger for the same task is a no-op).

Only :func:`verify_runway_callback` needs Airflow (it reads the key from the connection); the other
helpers work in any Python web app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from airflow_provider_runway.core.naming import safe_file_stem
from airflow_provider_runway.core.results import RunwayTask, TaskFamily
from airflow_provider_runway.core.webhooks import (
    DEFAULT_MAX_SKEW,
    DEFAULT_REPLAY_CACHE,
    ReplayCache,
    WebhookVerificationError,
    parse_callback_body,
    verify_webhook,
)

if TYPE_CHECKING:
    from airflow_provider_runway.hooks.runway import RunwayHook

#: Prefix of DAG run ids created for callbacks; the rest is the (sanitised) Runway task id.
RUN_ID_PREFIX = "runway__"

__all__ = [
    "RUN_ID_PREFIX",
    "ReplayCache",
    "TaskFamily",
    "WebhookVerificationError",
    "callback_run_id",
    "callback_run_request",
    "trigger_dag_run",
    "verify_runway_callback",
]


def verify_runway_callback(
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any],
    *,
    runway_conn_id: str = "runway_default",
    hook: RunwayHook | None = None,
    family: str | TaskFamily | None = None,
    max_skew: float = DEFAULT_MAX_SKEW,
    replay_cache: ReplayCache | None = DEFAULT_REPLAY_CACHE,
    require_signature: bool = True,
    now: float | None = None,
) -> RunwayTask:
    """Verify a callback against the connection's ``webhook_secret`` and return the task.

    :param headers: the request headers (any mapping; names are matched case-insensitively).
    :param body: the raw request body (preferably the exact bytes received).
    :param runway_conn_id: connection whose extra holds ``webhook_secret`` (or, formerly, ``webhook_hmac_key``).
    :param hook: an existing hook to read the key from, instead of ``runway_conn_id``.
    :param family: family of the operator that asked for this callback; the task carries it.
    :param max_skew: seconds a callback's timestamp may differ from the local clock.
    :param replay_cache: rejects a ``(task id, timestamp)`` seen before; by default a process-wide
        cache, ``None`` turns replay protection off.
    :param require_signature: when the connection has no key, refuse (default) or only parse.
    :param now: the current unix time (tests).
    :raises WebhookVerificationError: verification failed; ``reason`` says why.
    """
    if hook is None:
        from airflow_provider_runway.hooks.runway import RunwayHook

        hook = RunwayHook(runway_conn_id)
    key = hook.get_webhook_hmac_key()
    if key:
        return verify_webhook(headers, body, key, family=family, max_skew=max_skew, now=now, replay_cache=replay_cache)
    if require_signature:
        raise WebhookVerificationError(
            "no_key",
            f"Connection {hook.runway_conn_id!r} has no webhook_secret in its extra; cannot verify the callback "
            "(pass require_signature=False to accept unsigned callbacks)",
        )
    try:
        task = parse_callback_body(body)
    except ValueError as err:
        raise WebhookVerificationError("malformed_body", f"Callback body rejected: {err}") from None
    return task if family is None else replace(task, family=TaskFamily.coerce(family))


def callback_run_id(task_id: str) -> str:
    """The DAG run id for a callback of ``task_id``: stable, so a redelivered callback cannot start a second run."""
    return f"{RUN_ID_PREFIX}{safe_file_stem(task_id)}"


def callback_run_request(
    task: RunwayTask | str, *, family: str | TaskFamily, note: str | None = None
) -> dict[str, Any]:
    """Body of ``POST /api/v2/dags/{dag_id}/dagRuns`` for a verified callback.

    ``conf`` carries the signed task id (``runway_task_id``) and ``family``, the family of the operator
    that asked for the callback, and nothing else from the body: the signature covers neither the
    state, the messages, the URLs nor the body's shape.

    :param task: the verified task (or its id).
    :param family: ``"runway"`` (generate, extend) or ``"aleph"``, as the receiver knows it from the
        callback URL it gave the operator.
    :param note: a DAG run note.
    """
    task_id = task.task_id if isinstance(task, RunwayTask) else str(task)
    conf: dict[str, Any] = {"runway_task_id": task_id, "family": TaskFamily.coerce(family).value}
    body: dict[str, Any] = {"dag_run_id": callback_run_id(task_id), "logical_date": None, "conf": conf}
    if note:
        body["note"] = note
    return body


def trigger_dag_run(
    api_url: str,
    dag_id: str,
    task: RunwayTask | str,
    *,
    family: str | TaskFamily,
    token: str,
    session: requests.Session | None = None,
    timeout: float = 10.0,
) -> str | None:
    """Trigger ``dag_id`` for a verified callback through Airflow's REST API.

    :param api_url: the Airflow api-server base URL, e.g. ``http://airflow-apiserver:8080``.
    :param dag_id: the DAG to run; it reads ``dag_run.conf["runway_task_id"]`` and ``["family"]``.
    :param task: the verified callback task (or its id).
    :param family: the family of the operator that asked for the callback (not the body's shape).
    :param token: a bearer token (``POST {api_url}/auth/token``); never logged or returned.
    :param session: a requests session to reuse.
    :param timeout: seconds for the request.
    :return: the new run id, or ``None`` when a run for this task already exists (a redelivery).
    :raises requests.HTTPError: any other refusal (404 unknown DAG, 401/403 token, 400 bad conf).
    """
    url = f"{api_url.rstrip('/')}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns"
    request = callback_run_request(task, family=family)
    task_id = request["conf"]["runway_task_id"]
    http = session or requests.Session()
    try:
        response = http.post(
            url,
            json=request,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    finally:
        if session is None:
            http.close()
    if response.status_code == 409:
        return None
    if response.status_code >= 400:
        raise requests.HTTPError(
            f"Triggering DAG {dag_id!r} for Runway task {task_id} failed: HTTP {response.status_code} "
            f"{response.text[:300]}",
            response=response,
        )
    run_id = response.json().get("dag_run_id")
    return str(run_id) if run_id else callback_run_id(task_id)
