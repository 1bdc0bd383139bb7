"""The simulator's own price list: what it deducts from an account when it accepts a create.

Kept apart from the provider's table (:mod:`airflow_provider_runway.core.pricing`) on purpose, as KIE's
billing is apart from any client: a test compares the two, so a change to either is seen.
Credits are deducted at create and never refunded, also for a task that fails later; a task failed at once
for the concurrency limit costs nothing (the engine charges it 0).
"""

from __future__ import annotations

#: Credits per second of Runway video, by quality.
RUNWAY_CREDITS_PER_SECOND: dict[str, int] = {"720p": 12, "1080p": 14}
#: Credits per Aleph edit (KIE quotes 50-70 per 5 s; the simulator charges the middle).
ALEPH_CREDITS = 60
ALEPH = "aleph"


def credit_cost(kind: str, duration: int, quality: str) -> int:
    """Credits charged for a task: Runway 12/s at 720p, 14/s at 1080p; Aleph 60 per edit."""
    if kind == ALEPH:
        return ALEPH_CREDITS
    return RUNWAY_CREDITS_PER_SECOND.get(quality, RUNWAY_CREDITS_PER_SECOND["720p"]) * duration
