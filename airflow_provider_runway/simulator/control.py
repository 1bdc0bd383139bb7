"""The ``/_sim/`` control API: not part of KIE; tests and benchmarks drive the simulator with it.

No authentication (bind the simulator to loopback). Errors are plain HTTP 400/404/409 with
``{"error": ...}``; the error style does not apply.

=======  =============================  ==========================================================
GET      /_sim/health                   ``{"ok": true, "tasks": n}``
GET      /_sim/config                   the configuration (keys are not shown)
POST     /_sim/config                   change fields, e.g. ``{"time_scale": 0.1, "error_style": "http"}``
GET      /_sim/counters                 requests per endpoint and per task, tasks and credits per account,
                                       429s of the rate limit, concurrency failures, uploads...
POST     /_sim/reset                    forget tasks, accounts, counters, faults and the pause
POST     /_sim/pause, /_sim/resume      hold tasks in ``generating``; release them (they finish at once)
GET      /_sim/faults                   active fault rules
POST     /_sim/faults                   ``{"endpoint", "kind", "count" | "fraction", "retry_after", "delay"}``;
                                       kinds in ``faults.FAULT_KINDS`` (``cap_daily``: a reached usage cap,
                                       ``ip_refused``: KIE's 401 to an address off the IP whitelist, ...)
DELETE   /_sim/faults                   remove every rule
GET      /_sim/tasks, /_sim/tasks/{id}  task details with ``completes_at`` (epoch seconds)
POST     /_sim/tasks/{id}/fail          ``{"code": 400, "message": "...", "immediate": true}``
GET      /_sim/accounts?label=          an account by :func:`account_label`
POST     /_sim/accounts                 ``{"api_key": "...", "credits": 10}`` sets the balance
=======  =============================  ==========================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_runway.simulator.engine import SimError
from airflow_provider_runway.simulator.faults import FaultRule

if TYPE_CHECKING:
    from airflow_provider_runway.simulator.server import RunwaySimulator

PREFIX = "/_sim"


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _problem(status: int, message: str) -> web.Response:
    return _reply({"error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "malformed JSON"}), content_type="application/json"
        ) from None
    if not isinstance(payload, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}), content_type="application/json")
    return payload


class _Control:
    """Handlers bound to one simulator."""

    def __init__(self, sim: RunwaySimulator) -> None:
        self.sim = sim

    async def health(self, request: web.Request) -> web.Response:
        return _reply({"ok": True, "tasks": len(self.sim.engine.tasks)})

    async def get_config(self, request: web.Request) -> web.Response:
        return _reply(self.sim.config.to_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        changes = await _body(request)
        for name in ("api_keys", "durations"):
            if isinstance(changes.get(name), list):
                changes[name] = tuple(changes[name])
        try:
            self.sim.engine.config = self.sim.config.updated(changes)
        except (TypeError, ValueError) as exc:
            return _problem(400, str(exc))
        return _reply(self.sim.config.to_dict())

    async def counters(self, request: web.Request) -> web.Response:
        return _reply(self.sim.engine.counters())

    async def reset(self, request: web.Request) -> web.Response:
        self.sim.reset()
        return _reply({"ok": True})

    async def pause(self, request: web.Request) -> web.Response:
        self.sim.engine.pause()
        return _reply({"paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        released = self.sim.engine.resume()
        return _reply({"paused": False, "released": released})

    async def list_faults(self, request: web.Request) -> web.Response:
        return _reply([rule.to_dict() for rule in self.sim.faults.rules])

    async def add_fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        allowed = {"endpoint", "kind", "count", "fraction", "retry_after", "delay"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return _problem(400, f"unknown fault fields: {', '.join(unknown)}")
        try:
            rule = self.sim.faults.add(FaultRule(**{"endpoint": "*", **body}))
        except (TypeError, ValueError) as exc:
            return _problem(400, str(exc))
        return _reply(rule.to_dict(), 201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.sim.faults.clear()
        return _reply({"ok": True})

    async def list_tasks(self, request: web.Request) -> web.Response:
        engine = self.sim.engine
        return _reply([engine.task_info(task) for task in engine.tasks.values()])

    async def task(self, request: web.Request) -> web.Response:
        engine = self.sim.engine
        task = engine.find(request.match_info["task_id"])
        if task is None:
            return _problem(404, "no such task")
        return _reply(engine.task_info(task))

    async def fail_task(self, request: web.Request) -> web.Response:
        engine = self.sim.engine
        task = engine.find(request.match_info["task_id"])
        if task is None:
            return _problem(404, "no such task")
        body = await _body(request)
        code, message = body.get("code", 400), body.get("message", "Inappropriate content detected")
        if not isinstance(code, int) or not isinstance(message, str):
            return _problem(400, "code must be an integer and message a string")
        try:
            engine.fail(task, code, message, immediate=bool(body.get("immediate", True)))
        except SimError as exc:
            return _problem(exc.code, exc.message)
        return _reply(engine.task_info(task))

    async def account(self, request: web.Request) -> web.Response:
        """``GET ?label=`` reads an account; ``POST {"api_key", "credits"}`` sets its credits."""
        engine = self.sim.engine
        if request.method == "POST":
            body = await _body(request)
            key, credits = body.get("api_key"), body.get("credits")
            if not isinstance(key, str) or not key or not isinstance(credits, int):
                return _problem(400, "api_key (string) and credits (integer) are required")
            found = engine.account(key)
            found.credits = credits
        else:
            label = request.query.get("label", "")
            found_or_none = engine.accounts.get(label)
            if found_or_none is None:
                return _reply({"label": label, "credits": engine.config.starting_credits, "tasks_created": 0})
            found = found_or_none
        return _reply(
            {
                "label": found.label,
                "credits": found.credits,
                "tasks_created": found.tasks_created,
                "credits_spent": found.credits_spent,
            }
        )


def add_control_routes(router: web.UrlDispatcher, sim: RunwaySimulator) -> None:
    """Mount the control API under ``/_sim/``."""
    ctl = _Control(sim)
    router.add_get(f"{PREFIX}/health", ctl.health)
    router.add_get(f"{PREFIX}/config", ctl.get_config)
    router.add_post(f"{PREFIX}/config", ctl.set_config)
    router.add_get(f"{PREFIX}/counters", ctl.counters)
    router.add_post(f"{PREFIX}/reset", ctl.reset)
    router.add_post(f"{PREFIX}/pause", ctl.pause)
    router.add_post(f"{PREFIX}/resume", ctl.resume)
    router.add_get(f"{PREFIX}/faults", ctl.list_faults)
    router.add_post(f"{PREFIX}/faults", ctl.add_fault)
    router.add_delete(f"{PREFIX}/faults", ctl.clear_faults)
    router.add_get(f"{PREFIX}/tasks", ctl.list_tasks)
    router.add_get(f"{PREFIX}/tasks/{{task_id}}", ctl.task)
    router.add_post(f"{PREFIX}/tasks/{{task_id}}/fail", ctl.fail_task)
    router.add_get(f"{PREFIX}/accounts", ctl.account)
    router.add_post(f"{PREFIX}/accounts", ctl.account)
