"""Fault injection: rules that replace the next N (or a fraction of) responses of an endpoint."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS: tuple[str, ...] = (
    "http500",
    "http455",
    "http429",
    "http408",
    "malformed_json",
    "html_error",
    "slow",
    "drop",
    "drop_after",
    "cap_hourly",
    "cap_daily",
    "cap_total",
    "ip_refused",
)

#: Endpoint names used by counters and fault rules, by path.
ENDPOINT_NAMES: dict[str, str] = {
    "/api/v1/runway/generate": "generate",
    "/api/v1/runway/extend": "extend",
    "/api/v1/runway/record-detail": "record-detail",
    "/api/v1/aleph/generate": "aleph-generate",
    "/api/v1/aleph/record-info": "record-info",
    "/api/v1/chat/credit": "credit",
    "/api/v1/common/download-url": "download-url",
    "/api/file-stream-upload": "file-stream-upload",
    "/api/file-url-upload": "file-url-upload",
    "/api/file-base64-upload": "file-base64-upload",
}
FILES_ENDPOINT = "files"
TEMPFILE_ENDPOINT = "tempfile"
ALL_ENDPOINTS = "*"


def endpoint_name(path: str) -> str | None:
    """The endpoint name of a request path, ``None`` for paths faults never touch."""
    name = ENDPOINT_NAMES.get(path)
    if name is None and path.startswith("/files/"):
        return FILES_ENDPOINT
    if name is None and path.startswith("/tempfile/"):
        return TEMPFILE_ENDPOINT
    return name


def normalise_endpoint(value: str) -> str:
    """Accept an endpoint name, its path, or ``*``."""
    if value in (ALL_ENDPOINTS, FILES_ENDPOINT, TEMPFILE_ENDPOINT) or value in ENDPOINT_NAMES.values():
        return value
    if value in ENDPOINT_NAMES:
        return ENDPOINT_NAMES[value]
    known = ", ".join([*ENDPOINT_NAMES.values(), FILES_ENDPOINT, TEMPFILE_ENDPOINT, ALL_ENDPOINTS])
    raise ValueError(f"unknown endpoint {value!r}; one of: {known} (or an API path)")


_ids = itertools.count(1)


@dataclass
class FaultRule:
    """Replace responses of ``endpoint``: the next ``count`` requests, or a ``fraction`` of them.

    ``slow`` delays by ``delay`` seconds then answers normally; ``drop`` closes the connection
    without answering; ``drop_after`` processes the request (a create does create a task) and then
    closes the connection; ``http429`` sends ``Retry-After: retry_after``. ``cap_hourly``,
    ``cap_daily`` and ``cap_total`` answer HTTP 429 for a reached usage cap of the key (no
    ``Retry-After``); ``ip_refused`` answers 401 "You do not have access permissions", as KIE does
    to an address outside the key's IP whitelist.
    """

    endpoint: str
    kind: str
    count: int | None = None
    fraction: float | None = None
    retry_after: float | None = None
    delay: float = 1.0
    rule_id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def __post_init__(self) -> None:
        self.endpoint = normalise_endpoint(self.endpoint)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of: {', '.join(FAULT_KINDS)}")
        if (self.count is None) == (self.fraction is None):
            raise ValueError("give exactly one of count (next N requests) or fraction (0..1)")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ValueError("fraction must be within (0, 1]")
        if self.delay < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delay and retry_after must be >= 0")

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "count": self.count,
            "fraction": self.fraction,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "fired": self.fired,
        }


class FaultBook:
    """The active rules; the first matching rule wins."""

    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(f"faults:{seed}")

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, endpoint: str) -> FaultRule | None:
        """The rule that fires for this request, if any (count rules are consumed)."""
        for rule in self.rules:
            if rule.endpoint not in (endpoint, ALL_ENDPOINTS):
                continue
            if rule.fraction is not None and self._rng.random() >= rule.fraction:
                continue
            rule.fired += 1
            if rule.exhausted:
                self.rules.remove(rule)
            return rule
        return None
