"""Configuration of the Runway simulator."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_runway.core.models import DEFAULT_DURATIONS, DEFAULT_MAX_PROMPT_LENGTH

#: Message of random failures (the engine's default; kept here so the config has no engine import).
RANDOM_FAILURE_MESSAGE = "Internal error during generation, please try again"

ERROR_STYLES: tuple[str, ...] = ("body", "http")
CONCURRENCY_MODES: tuple[str, ...] = ("refuse", "fail_task")
RECORD_STYLES: tuple[str, ...] = ("documented", "variant", "ids")
#: KIE's message when an account's generation slots are all busy (the default ``concurrency_message``).
CONCURRENCY_MESSAGE = "Reached the limit for concurrent generations"
#: The capacity message KIE sends free accounts instead.
FREE_ACCOUNT_CAPACITY_MESSAGE = (
    "Please try again later. You can upgrade to Standard membership to start generating now."
)
#: Periods of a key's usage cap (KIE lets an account cap each key hourly, daily and in total).
USAGE_CAP_PERIODS: tuple[str, ...] = ("hourly", "daily", "total")
#: How the Aleph endpoints answer: served, or one of the ways a discontinued model may be refused.
ALEPH_MODES: tuple[str, ...] = ("on", "404", "422", "505")

#: Fields that cannot change while the server runs (they shape the accounts or the server itself).
STARTUP_ONLY_FIELDS: frozenset[str] = frozenset({"seed", "max_body_bytes", "upload_dir", "allow_internal_fetch"})


@dataclass
class SimulatorConfig:
    """Behaviour of a simulated KIE Runway API.

    Durations are *simulated* seconds: the real time they take is the value multiplied by
    ``time_scale`` (``time_scale=0.01`` turns a 60 s generation into 0.6 s). Retention and the
    lifetime of download links are scaled the same way. Changed at runtime, phase durations and
    ``time_scale`` apply to tasks created afterwards; retention and the error style apply at once.

    :param wait_seconds: time a new task spends in ``wait``.
    :param queueing_seconds: time in ``queueing``.
    :param generating_seconds: time a Runway generate or extend task spends in ``generating``.
    :param aleph_wait_seconds: time an Aleph task spends before it starts (``response`` is null).
    :param aleph_generating_seconds: time an Aleph task spends generating.
    :param generating_jitter: the generating phase lasts ``generating_seconds`` plus a uniform
        random spread in ``[-jitter, +jitter]`` (never below zero), drawn deterministically from ``seed``.
    :param time_scale: factor from simulated seconds to real seconds.
    :param seed: seed of task ids, jitter and random failures: the same seed gives the same run.
    :param api_keys: accepted Bearer keys; empty means any non-empty key is an account.
    :param error_style: ``"body"`` sends business errors as HTTP 200 with the error ``code`` in the
        body; ``"http"`` sends them with that HTTP status.
    :param concurrency_limit: most unfinished tasks per key; 0 means unlimited.
    :param concurrency_error_code: code of a create refused by the concurrency limit (400 as KIE
        reports it, or 429).
    :param concurrency_mode: ``"fail_task"`` (KIE's current behaviour) accepts a create over the
        limit (no charge) and the task fails at once with code 400 and ``concurrency_message``,
        callback included; ``"refuse"`` answers the create itself with ``concurrency_error_code``.
    :param concurrency_message: what KIE says when the account has no free slot: "Reached the limit
        for concurrent generations", or :data:`FREE_ACCOUNT_CAPACITY_MESSAGE` as free accounts see it.
    :param usage_cap_creates: most create requests per key within ``usage_cap_period`` (KIE's per-key
        usage caps); more get HTTP 429 with a message naming the cap and no ``Retry-After``. 0 turns
        the cap off.
    :param usage_cap_period: ``"hourly"``, ``"daily"`` (simulated hours and days) or ``"total"``.
    :param allowed_ips: comma-separated client addresses the keys accept (KIE's IP whitelist); a
        request from any other address gets 401 "You do not have access permissions". Empty: any.
    :param rate_limit_creates: most create requests (generate, extend, Aleph generate) per key within
        ``rate_limit_window``; more are refused with HTTP 429 and ``Retry-After``, not queued. 0 or
        ``None`` turns the limit off.
    :param rate_limit_window: length of the rate-limit window in real seconds (not scaled: clients
        pace themselves in real time).
    :param record_style: ``"documented"`` sends the status shapes of the reference; ``"variant"``
        sends the shapes some clients report instead: Runway ``status`` for ``state``, a flat
        ``videoUrl``/``imageUrl``, ``failCode`` as a string (``""`` when none); Aleph ``errorCode``
        null while in progress. ``"ids"`` sends Runway records as one of KIE's current examples
        does: ``id`` and ``parentId`` (also in ``generateParam``; 0 when none) and no ``taskId``
        or ``parentTaskId`` anywhere.
    :param starting_credits: credits of a new account.
    :param retention_seconds: time after completion until ``expireFlag`` is 1 and files are gone.
    :param webhook_hmac_key: when set, callbacks carry ``X-Webhook-Timestamp`` and ``X-Webhook-Signature``.
    :param download_link_ttl: lifetime of a link from ``download-url`` (simulated seconds).
    :param video_size_bytes: pad served MP4 files to at least this size (``None``: a few kB).
    :param failure_rate: fraction of tasks that fail at completion (deterministic for ``seed``).
    :param failure_code: ``failCode`` (Aleph ``errorCode``, callback ``code``) of those random
        failures; KIE documents 400.
    :param failure_message: message of those random failures.
    :param aleph_failure_flags: report failed Aleph tasks with ``successFlag`` 2 (failed at
        creation, e.g. the concurrency limit) or 3 (generation failed), as KIE's other families do,
        instead of the documented 0; sent as strings with ``record_style="variant"``.
    :param aleph_mode: ``"on"`` serves Aleph; otherwise both Aleph endpoints answer as a
        discontinued model might and nothing is created: ``"404"`` an HTTP 404 as for an unknown
        path, ``"422"`` code 422 "model not available", ``"505"`` code 505 "feature disabled"
        (the last two follow ``error_style``).
    :param upload_retention_seconds: lifetime of an uploaded file (simulated seconds; KIE: 3 days).
    :param upload_max_bytes: largest file accepted by the stream and URL uploads.
    :param upload_base64_max_bytes: largest decoded file accepted by the base64 upload.
    :param upload_url_timeout: real seconds the URL upload may spend fetching its source (KIE: 30).
    :param upload_dir: directory of uploaded files; ``None`` uses a temporary directory removed
        when the server stops.
    :param allow_internal_fetch: let the URL upload fetch internal addresses (loopback, private,
        link-local, ...), e.g. the simulator's own files in tests; off by default, since the fetched
        bytes are served to anyone. Fixed at startup (``--allow-internal-fetch`` or the environment
        variable ``RUNWAY_SIM_ALLOW_INTERNAL_FETCH=1``).
    :param max_prompt_length: longest accepted prompt.
    :param durations: accepted Runway durations.
    :param max_body_bytes: largest accepted request body; larger ones get a 413.
    :param callback_timeout: seconds a callback POST may take.
    :param callback_attempts: callback deliveries tried before giving up.
    :param callback_retry_delay: real seconds between callback attempts.
    :param callback_scan_interval: real seconds between scans for finished tasks with a callback.
    """

    wait_seconds: float = 2.0
    queueing_seconds: float = 5.0
    generating_seconds: float = 60.0
    aleph_wait_seconds: float = 10.0
    aleph_generating_seconds: float = 180.0
    generating_jitter: float = 0.0
    time_scale: float = 1.0
    seed: int = 0
    api_keys: tuple[str, ...] = ()
    error_style: str = "body"
    concurrency_limit: int = 10
    concurrency_error_code: int = 400
    concurrency_mode: str = "fail_task"
    concurrency_message: str = CONCURRENCY_MESSAGE
    usage_cap_creates: int = 0
    usage_cap_period: str = "daily"
    allowed_ips: str = ""
    rate_limit_creates: int | None = 20
    rate_limit_window: float = 10.0
    record_style: str = "documented"
    starting_credits: int = 10_000
    retention_seconds: float = 14 * 86400.0
    webhook_hmac_key: str | None = None
    download_link_ttl: float = 1200.0
    video_size_bytes: int | None = None
    failure_rate: float = 0.0
    failure_code: int = 400
    failure_message: str = RANDOM_FAILURE_MESSAGE
    aleph_failure_flags: bool = False
    aleph_mode: str = "on"
    upload_retention_seconds: float = 3 * 86400.0
    upload_max_bytes: int = 100 * 1024 * 1024
    upload_base64_max_bytes: int = 10 * 1024 * 1024
    upload_url_timeout: float = 30.0
    upload_dir: str | None = None
    allow_internal_fetch: bool = False
    max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH
    durations: tuple[int, ...] = DEFAULT_DURATIONS
    max_body_bytes: int = 1024 * 1024
    callback_timeout: float = 15.0
    callback_attempts: int = 3
    callback_retry_delay: float = 1.0
    callback_scan_interval: float = 0.05

    def __post_init__(self) -> None:
        self.api_keys = tuple(self.api_keys)
        self.durations = tuple(int(d) for d in self.durations)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` when a value makes no sense."""
        if self.error_style not in ERROR_STYLES:
            raise ValueError(f"error_style must be one of {ERROR_STYLES}, got {self.error_style!r}")
        for name in (
            "wait_seconds",
            "queueing_seconds",
            "generating_seconds",
            "aleph_wait_seconds",
            "aleph_generating_seconds",
            "generating_jitter",
            "retention_seconds",
            "download_link_ttl",
            "callback_retry_delay",
            "upload_retention_seconds",
        ):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.concurrency_mode not in CONCURRENCY_MODES:
            raise ValueError(f"concurrency_mode must be one of {CONCURRENCY_MODES}, got {self.concurrency_mode!r}")
        if self.record_style not in RECORD_STYLES:
            raise ValueError(f"record_style must be one of {RECORD_STYLES}, got {self.record_style!r}")
        if self.usage_cap_period not in USAGE_CAP_PERIODS:
            raise ValueError(f"usage_cap_period must be one of {USAGE_CAP_PERIODS}, got {self.usage_cap_period!r}")
        if self.usage_cap_creates < 0:
            raise ValueError("usage_cap_creates must be >= 0 (0 = no cap)")
        if not self.concurrency_message.strip():
            raise ValueError("concurrency_message must not be empty")
        if self.aleph_mode not in ALEPH_MODES:
            raise ValueError(f"aleph_mode must be one of {ALEPH_MODES}, got {self.aleph_mode!r}")
        if self.rate_limit_creates is not None and self.rate_limit_creates < 0:
            raise ValueError("rate_limit_creates must be >= 0 (0 or None = no limit)")
        if self.rate_limit_window <= 0:
            raise ValueError("rate_limit_window must be > 0")
        if not 100 <= self.failure_code <= 999:
            raise ValueError("failure_code must be a 3-digit code")
        if self.upload_max_bytes < 1 or self.upload_base64_max_bytes < 1 or self.upload_url_timeout <= 0:
            raise ValueError("upload_max_bytes and upload_base64_max_bytes must be >= 1, upload_url_timeout > 0")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self.concurrency_limit < 0:
            raise ValueError("concurrency_limit must be >= 0 (0 = unlimited)")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be within [0, 1]")
        if self.callback_attempts < 1 or self.callback_timeout <= 0 or self.callback_scan_interval <= 0:
            raise ValueError("callback_attempts must be >= 1, callback_timeout and callback_scan_interval > 0")
        if self.video_size_bytes is not None and not 0 <= self.video_size_bytes <= 512 * 1024 * 1024:
            raise ValueError("video_size_bytes must be within [0, 512 MiB]")

    @property
    def allowed_ip_set(self) -> frozenset[str]:
        """``allowed_ips`` as a set; empty when every address is allowed."""
        return frozenset(part.strip() for part in self.allowed_ips.split(",") if part.strip())

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the webhook key is shown as set or not, never in clear)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["api_keys"] = len(self.api_keys)
        data["durations"] = list(self.durations)
        data["webhook_hmac_key"] = "***" if self.webhook_hmac_key else None
        return data

    def updated(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """A copy with ``changes`` applied; unknown or startup-only fields raise :class:`ValueError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        frozen = sorted(set(changes) & STARTUP_ONLY_FIELDS)
        if frozen:
            raise ValueError(f"fields fixed at startup: {', '.join(frozen)}")
        return dataclasses.replace(self, **dict(changes))
