"""The README's callback receiver: a FastAPI app that verifies KIE callbacks and triggers a DAG run.

Run it with ``uvicorn module:app``, where ``app = create_receiver(...)``. Tested end to end in
``test_callback_receiver_app.py`` (simulator -> this app -> Airflow's REST API).
"""

from __future__ import annotations

from collections.abc import Callable

import requests
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_runway.core.results import TaskFamily
from airflow_provider_runway.core.webhooks import ReplayCache, WebhookVerificationError, verify_webhook
from airflow_provider_runway.transfer.callbacks import trigger_dag_run


def password_token(airflow_api: str, username: str, password: str) -> Callable[[], str]:
    """A token provider for Airflow's simple or FAB auth manager (``POST /auth/token``)."""

    def token() -> str:
        response = requests.post(
            f"{airflow_api}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    return token


def create_receiver(hmac_key: str, airflow_api: str, dag_id: str, token: Callable[[], str]) -> FastAPI:
    app = FastAPI()
    replay_cache = ReplayCache()  # per process; use a shared store (e.g. Redis) with several workers

    # One path per family: each operator's callback_url names its own, e.g. .../runway/callback/aleph
    # for RunwayAlephOperator. The family comes from there, never from the body's shape.
    @app.post("/runway/callback/{family}")
    async def runway_callback(family: TaskFamily, request: Request) -> Response:
        body = await request.body()
        try:
            task = verify_webhook(request.headers, body, hmac_key, family=family, replay_cache=replay_cache)
        except WebhookVerificationError as err:
            # A replay was accepted once already: acknowledge it so KIE stops retrying.
            return Response(status_code=200 if err.reason == "replayed" else 401)
        try:
            await run_in_threadpool(trigger_dag_run, airflow_api, dag_id, task, family=family, token=token())
        except requests.RequestException:
            return Response(status_code=503)  # Airflow unreachable: let KIE retry
        return Response(status_code=200)

    return app
