"""Creating again while KIE has no capacity: the Runway operators' wait for a generation slot.

A create refused for the account's concurrency limit (or still rate-limited after the HTTP retries), and a
task KIE accepted and then failed with the concurrency message before charging, cost nothing: the task is
created again with back-off, inside the same try, until KIE takes it or the try's deadline passes. When to
create again and how long to pause is :mod:`airflow_provider_runway.core.retry`'s decision;
:class:`CapacityWait` keeps the wait's state across the pauses. A blocking operator pauses in place; a
deferrable one defers to Airflow's :class:`DateTimeTrigger` until the next attempt (see :func:`pause_trigger`),
so no worker slot is held while KIE is full.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_runway.core.retry import capacity_delay
from airflow_provider_runway.core.wait import deadline_for
from airflow_provider_runway.exceptions import RunwayWaitError

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

#: Shortest pause of a deferrable operator for capacity, in seconds. A time trigger that fires while the deferring
#: task process is still ending lets the scheduler queue the resume before the executor reports that process done,
#: and Airflow then fails the task instance ("finished with state success, but the task instance's state attribute
#: is queued"; seen on 3.3 with task processes slowed by a loaded machine, apache/airflow#67287).
MIN_DEFERRED_PAUSE = 15.0
#: Longest least pause of a deferrable operator: the least pause doubles with each attempt up to it.
MAX_DEFERRED_PAUSE = 60.0


@dataclass
class CapacityWait:
    """One try's wait for a generation slot: when it began and how many creates KIE turned away.

    Plain JSON (:meth:`to_dict`), so a deferrable operator carries it from one deferral to the next.
    """

    since: float | None = None
    attempts: int = 0

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any] | None) -> CapacityWait:
        if not saved:
            return cls()
        since = saved.get("since")
        return cls(since=None if since is None else float(since), attempts=int(saved.get("attempts") or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "attempts": self.attempts}

    @property
    def waiting(self) -> bool:
        return self.since is not None

    def next_pause(
        self,
        reason: str,
        *,
        log: Any,
        timeout: float,
        poll_interval: float,
        try_started_at: float | None,
        execution_timeout: float | None,
        retry_after: float | None = None,
        least: float = 0.0,
    ) -> float:
        """Seconds to pause before creating again; a :class:`RunwayWaitError` once the deadline passed.

        The pause grows exponentially from ``poll_interval``, at least ``retry_after`` (see
        ``core.retry.capacity_delay``). The deadline is ``timeout`` from the wait's start, or the task's
        ``execution_timeout``, whichever is earlier; an Airflow retry may then create the task. The wait is
        logged once, when it begins. ``least`` raises the first pause, and doubles with each attempt up to
        :data:`MAX_DEFERRED_PAUSE` (never past the deadline): a deferrable operator's attempt costs a task process
        of its own, so while KIE stays full its attempts thin out, not only its reads.
        """
        now = time.time()
        if self.since is None:
            self.since = now
            log.warning(
                "KIE cannot take the task now (%s); nothing was created or charged. "
                "Creating it again with back-off until KIE accepts it",
                reason,
            )
        deadline, source = deadline_for(
            self.since, timeout, started_at=try_started_at, execution_timeout=execution_timeout
        )
        if now >= deadline:
            raise RunwayWaitError(
                f"KIE did not accept the task within the {source} "
                f"({self.attempts + 1} attempts over {now - self.since:.1f} s; last: {reason}). "
                "Nothing was created or charged; a retry tries again."
            )
        self.attempts += 1
        least = min(least * 2 ** (self.attempts - 1), max(least, MAX_DEFERRED_PAUSE))
        return min(max(capacity_delay(self.attempts, poll_interval, None, retry_after), least), deadline - now)

    def accepted(self, log: Any) -> None:
        """Log how long KIE took to accept the task, when it had turned it away before."""
        if self.since is not None:
            log.info("KIE accepted the task after %.1f s (%d attempts)", time.time() - self.since, self.attempts + 1)


def pause_trigger(seconds: float) -> BaseTrigger:
    """Airflow's own time trigger, firing when the next create is due: the pause frees the worker slot."""
    try:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    except ImportError:  # Airflow 2 without the standard provider
        from airflow.triggers.temporal import DateTimeTrigger  # type: ignore[no-redef]
    return DateTimeTrigger(datetime.fromtimestamp(time.time() + seconds, tz=timezone.utc))
