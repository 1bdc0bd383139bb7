"""The simulator's state: accounts, credits, tasks and their lazily computed state machine.

No timer runs per task: each task stores the real (epoch) times at which it enters each phase,
and its state is computed from the clock when asked. Ten thousand live tasks cost a few MB.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_runway.simulator.config import CONCURRENCY_MESSAGE, RANDOM_FAILURE_MESSAGE, SimulatorConfig
from airflow_provider_runway.simulator.pricing import credit_cost

#: Length of an extension, in seconds of video.
EXTEND_SECONDS = 5
ALEPH_SECONDS = 5

#: Default code and message of random failures (``failure_code`` / ``failure_message``).
RANDOM_FAILURE = (400, RANDOM_FAILURE_MESSAGE)
RATE_LIMIT_MESSAGE = "Too many requests: at most {limit} new requests per {window:g} seconds per account"
#: The simulator's wording of a reached usage cap (KIE documents the caps, not their wording).
USAGE_CAP_MESSAGE = "Your API key has reached its {period} usage limit"
#: KIE's 401 for a request from an address outside the key's IP whitelist (the same as for a bad key).
ACCESS_REFUSED_MESSAGE = "You do not have access permissions"
#: Simulated seconds of each usage cap period (``total`` never resets).
USAGE_CAP_SECONDS: dict[str, float] = {"hourly": 3600.0, "daily": 86400.0}

RUNWAY = "runway"
ALEPH = "aleph"


def account_label(api_key: str) -> str:
    """The name an API key is shown under in counters: never the key itself."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


class SimError(Exception):
    """A business error the API answers with ``code`` and ``msg``.

    ``http`` sends it with that HTTP status whatever the error style (KIE's 429); ``headers`` are
    added to the response.
    """

    def __init__(self, code: int, message: str, *, http: bool = False, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http = http
        self.headers = headers or {}


@dataclass
class Task:
    """One simulated generation. Times are real epoch seconds."""

    task_id: str
    family: str
    kind: str
    label: str
    params: dict[str, Any]
    created: float
    t_queue: float
    t_gen: float
    t_done: float
    duration: int
    quality: str
    aspect_ratio: str
    base_url: str
    callback_url: str | None = None
    parent_task_id: str = ""
    failure: tuple[int, str] | None = None
    forced: bool = False
    cost: int = 0
    callback_done: bool = False
    create_failed: bool = False  # refused by the concurrency limit after being accepted

    @property
    def video_id(self) -> str:
        return "v-" + self.task_id


@dataclass
class Account:
    """Credits and counters of one API key."""

    label: str
    credits: int
    tasks_created: int = 0
    credits_spent: int = 0
    live: set[str] = field(default_factory=set)
    recent_creates: deque[float] = field(default_factory=deque)
    rate_limited: int = 0
    concurrency_failures: int = 0
    usage_creates: deque[float] = field(default_factory=deque)
    usage_capped: int = 0


@dataclass(frozen=True)
class Snapshot:
    """A task's state at one instant."""

    state: str  # wait | queueing | generating | success | fail
    expired: bool
    held: bool


class SimEngine:
    """Accounts, tasks and counters of one simulator; not thread-safe (one event loop owns it)."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every task, account, counter and pause; keep the configuration."""
        self.tasks: dict[str, Task] = {}
        self.accounts: dict[str, Account] = {}
        self.paused_at: float | None = None
        self.requests: Counter[str] = Counter()
        self.task_reads: Counter[str] = Counter()
        self.callback_log: list[dict[str, Any]] = []
        self.callbacks_sent = 0
        self.callbacks_failed = 0
        self.faults_fired: Counter[str] = Counter()
        self.uploads: Counter[str] = Counter()
        self.upload_bytes = 0
        self.ip_refused = 0
        self._created = 0
        self._callback_heap: list[tuple[float, str]] = []

    # -- time -------------------------------------------------------------------------------

    def scaled(self, simulated_seconds: float) -> float:
        """Real seconds for ``simulated_seconds``."""
        return simulated_seconds * self.config.time_scale

    # -- accounts ---------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> Account:
        """The account of an ``Authorization: Bearer`` header, or a 401 :class:`SimError`."""
        key = ""
        if header and header[:7].lower() == "bearer ":
            key = header[7:].strip()
        if not key or (self.config.api_keys and key not in self.config.api_keys):
            raise SimError(401, "You do not have access permissions: the API key is missing or invalid")
        return self.account(key)

    def account(self, api_key: str) -> Account:
        label = account_label(api_key)
        found = self.accounts.get(label)
        if found is None:
            found = self.accounts[label] = Account(label=label, credits=self.config.starting_credits)
        return found

    def admit_create(self, account: Account) -> None:
        """Count a create against the key's usage cap and rate limit; over either, raise a 429 :class:`SimError`.

        A refused request does not take a slot (KIE does not queue it), so a client that waits
        ``Retry-After`` seconds gets through the rate limit. A reached usage cap has no ``Retry-After``:
        it lasts until its period ends.
        """
        self._admit_usage(account)
        limit, window = self.config.rate_limit_creates, self.config.rate_limit_window
        if not limit:
            return
        now = self.clock()
        recent = account.recent_creates
        while recent and recent[0] <= now - window:
            recent.popleft()
        if len(recent) >= limit:
            account.rate_limited += 1
            retry_after = max(1, math.ceil(recent[0] + window - now))
            raise SimError(
                429,
                RATE_LIMIT_MESSAGE.format(limit=limit, window=window),
                http=True,
                headers={"Retry-After": str(retry_after)},
            )
        recent.append(now)

    def _admit_usage(self, account: Account) -> None:
        cap, period = self.config.usage_cap_creates, self.config.usage_cap_period
        if not cap:
            return
        now = self.clock()
        used = account.usage_creates
        if period in USAGE_CAP_SECONDS:
            span = self.scaled(USAGE_CAP_SECONDS[period])
            while used and used[0] <= now - span:
                used.popleft()
        if len(used) >= cap:
            account.usage_capped += 1
            raise SimError(429, f"{USAGE_CAP_MESSAGE.format(period=period)} ({cap} requests)", http=True)
        used.append(now)

    def refuse_address(self, remote: str | None) -> None:
        """Raise KIE's 401 when ``allowed_ips`` is set and ``remote`` is not in it."""
        allowed = self.config.allowed_ip_set
        if allowed and remote not in allowed:
            self.ip_refused += 1
            raise SimError(401, ACCESS_REFUSED_MESSAGE)

    def running_count(self, account: Account) -> int:
        now = self.clock()
        account.live = {tid for tid in account.live if not self.is_terminal(self.tasks[tid], now)}
        return len(account.live)

    # -- tasks ------------------------------------------------------------------------------

    def _next_identity(self) -> tuple[str, random.Random]:
        self._created += 1
        digest = hashlib.sha256(f"runway-sim:{self.config.seed}:{self._created}".encode()).digest()
        task_id = str(uuid.UUID(bytes=digest[:16], version=4))
        return task_id, random.Random(digest)

    def create(
        self,
        account: Account,
        *,
        kind: str,
        params: dict[str, Any],
        duration: int,
        quality: str,
        aspect_ratio: str,
        base_url: str,
        callback_url: str | None,
        parent_task_id: str = "",
    ) -> Task:
        """Charge the account and start a task; raises the limit or credit :class:`SimError`."""
        cfg = self.config
        limit = cfg.concurrency_limit
        over_limit = bool(limit) and self.running_count(account) >= limit
        if over_limit and cfg.concurrency_mode == "refuse":
            shown = f" (limit {limit})" if cfg.concurrency_message == CONCURRENCY_MESSAGE else ""
            raise SimError(cfg.concurrency_error_code, f"{cfg.concurrency_message}{shown}")
        cost = 0 if over_limit else credit_cost(kind, duration, quality)
        if account.credits < cost:
            raise SimError(
                402, f"The current credits are insufficient: this task costs {cost}, the account has {account.credits}"
            )
        task_id, rng = self._next_identity()
        now = self.clock()
        family = ALEPH if kind == ALEPH else RUNWAY
        if family == ALEPH:
            t_queue = t_gen = now + self.scaled(cfg.aleph_wait_seconds)
            generating = cfg.aleph_generating_seconds
        else:
            t_queue = now + self.scaled(cfg.wait_seconds)
            t_gen = t_queue + self.scaled(cfg.queueing_seconds)
            generating = cfg.generating_seconds
        spread = rng.uniform(-cfg.generating_jitter, cfg.generating_jitter) if cfg.generating_jitter else 0.0
        t_done = t_gen + self.scaled(max(0.0, generating + spread))
        random_failure = (cfg.failure_code, cfg.failure_message)
        failure = random_failure if cfg.failure_rate and rng.random() < cfg.failure_rate else None
        task = Task(
            task_id=task_id,
            family=family,
            kind=kind,
            label=account.label,
            params=params,
            created=now,
            t_queue=t_queue,
            t_gen=t_gen,
            t_done=t_done,
            duration=duration,
            quality=quality,
            aspect_ratio=aspect_ratio,
            base_url=base_url,
            callback_url=callback_url,
            parent_task_id=parent_task_id,
            failure=failure,
            cost=cost,
        )
        if over_limit:
            task.failure = (400, cfg.concurrency_message)
            task.forced = task.create_failed = True
            task.t_queue = task.t_gen = task.t_done = now
        self.tasks[task_id] = task
        account.credits -= cost
        account.credits_spent += cost
        if over_limit:
            account.concurrency_failures += 1
        else:
            account.tasks_created += 1
            account.live.add(task_id)
        if callback_url:
            heapq.heappush(self._callback_heap, (t_done, task_id))
        return task

    def find(self, task_id: str, account: Account | None = None, family: str | None = None) -> Task | None:
        """The task, when it exists for ``account`` and ``family``."""
        task = self.tasks.get(task_id)
        if task is None or (account is not None and task.label != account.label):
            return None
        if family is not None and task.family != family:
            return None
        return task

    def is_held(self, task: Task, now: float) -> bool:
        paused = self.paused_at
        return paused is not None and not task.forced and now >= task.t_gen and task.t_done > paused

    def is_terminal(self, task: Task, now: float) -> bool:
        return now >= task.t_done and not self.is_held(task, now)

    def snapshot(self, task: Task, now: float | None = None) -> Snapshot:
        now = self.clock() if now is None else now
        held = self.is_held(task, now)
        if held or now < task.t_done:
            if now < task.t_queue:
                state = "wait"
            elif now < task.t_gen:
                state = "queueing"
            else:
                state = "generating"
            return Snapshot(state, False, held)
        if task.failure is not None:
            return Snapshot("fail", False, False)
        expired = now >= task.t_done + self.scaled(self.config.retention_seconds)
        return Snapshot("success", expired, False)

    def fail(self, task: Task, code: int, message: str, *, immediate: bool = True) -> None:
        """Make ``task`` fail: now, or when it would have completed."""
        now = self.clock()
        if self.is_terminal(task, now):
            raise SimError(409, f"Task {task.task_id} already finished")
        task.failure = (code, message)
        if immediate:
            task.forced = True
            task.t_queue = min(task.t_queue, now)
            task.t_gen = min(task.t_gen, now)
            task.t_done = now
        self._requeue_callback(task)

    # -- pause ------------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold every task that reaches ``generating`` there until :meth:`resume`."""
        if self.paused_at is None:
            self.paused_at = self.clock()

    def resume(self) -> int:
        """Release held tasks: they complete now. Returns how many were released."""
        paused = self.paused_at
        if paused is None:
            return 0
        now = self.clock()
        released = 0
        for task in self.tasks.values():
            if not task.forced and task.t_done > paused and task.t_done < now and now >= task.t_gen:
                task.t_done = now
                released += 1
                self._requeue_callback(task)
        self.paused_at = None
        return released

    # -- callbacks --------------------------------------------------------------------------

    def _requeue_callback(self, task: Task) -> None:
        if task.callback_url and not task.callback_done:
            heapq.heappush(self._callback_heap, (task.t_done, task.task_id))

    def due_callbacks(self) -> list[Task]:
        """Tasks with a callback URL that finished since the last call (each returned once)."""
        now = self.clock()
        heap = self._callback_heap
        due: list[Task] = []
        retry: list[tuple[float, str]] = []
        while heap and heap[0][0] <= now:
            _, task_id = heapq.heappop(heap)
            task = self.tasks.get(task_id)
            if task is None or task.callback_done:
                continue
            if self.is_terminal(task, now):
                task.callback_done = True
                due.append(task)
            elif task.t_done > now:
                retry.append((task.t_done, task_id))
            else:  # held by a pause: look again when resumed
                retry.append((now + 0.05, task_id))
        for item in retry:
            heapq.heappush(heap, item)
        return due

    # -- reporting --------------------------------------------------------------------------

    def task_info(self, task: Task) -> dict[str, Any]:
        """Everything about a task, for the control API (``completes_at`` is real epoch seconds)."""
        now = self.clock()
        snap = self.snapshot(task, now)
        return {
            "task_id": task.task_id,
            "family": task.family,
            "kind": task.kind,
            "account": task.label,
            "state": snap.state,
            "held": snap.held,
            "expired": snap.expired,
            "created_at": task.created,
            "queueing_at": task.t_queue,
            "generating_at": task.t_gen,
            "completes_at": None if snap.held else task.t_done,
            "failure": list(task.failure) if task.failure else None,
            "duration": task.duration,
            "quality": task.quality,
            "cost": task.cost,
            "callback_url": task.callback_url,
            "callback_done": task.callback_done,
            "parent_task_id": task.parent_task_id,
            "reads": self.task_reads.get(task.task_id, 0),
        }

    def counters(self) -> dict[str, Any]:
        """Request, task, credit and callback counters (JSON)."""
        now = self.clock()
        states: Counter[str] = Counter(self.snapshot(t, now).state for t in self.tasks.values())
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "task_reads": dict(self.task_reads),
            "tasks_total": len(self.tasks),
            "tasks_by_state": dict(states),
            "tasks_created": {a.label: a.tasks_created for a in self.accounts.values()},
            "concurrency_failures": {a.label: a.concurrency_failures for a in self.accounts.values()},
            "rate_limited": {a.label: a.rate_limited for a in self.accounts.values()},
            "rate_limited_total": sum(a.rate_limited for a in self.accounts.values()),
            "usage_capped": {a.label: a.usage_capped for a in self.accounts.values()},
            "ip_refused": self.ip_refused,
            "credits_spent": {a.label: a.credits_spent for a in self.accounts.values()},
            "credits_left": {a.label: a.credits for a in self.accounts.values()},
            "faults_fired": dict(self.faults_fired),
            "uploads": dict(self.uploads),
            "uploads_total": sum(self.uploads.values()),
            "upload_bytes": self.upload_bytes,
            "callbacks_sent": self.callbacks_sent,
            "callbacks_failed": self.callbacks_failed,
            "callbacks": list(self.callback_log[-200:]),
            "paused": self.paused_at is not None,
        }
