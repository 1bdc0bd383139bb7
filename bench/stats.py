"""Pure helpers of the benchmarks: percentiles, an event-loop lag probe, plain-text tables."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks; ``nan`` when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``nan`` when the denominator is zero or either side is ``nan``."""
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def per_thousand_wait_minutes(cpu_seconds: float, wait_seconds: float) -> float:
    """CPU seconds per 1,000 wait-minutes, from CPU seconds and the summed wait time in seconds."""
    return ratio(cpu_seconds * 1000, wait_seconds / 60)


def fmt(value: float | int | str | None, digits: int = 2) -> str:
    """A table cell: numbers rounded to ``digits``, ``nan``/``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("  ".join("-" * width for width in widths))
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


@dataclass
class LoopLagProbe:
    """Measures event-loop lag: how much later than asked a ticker coroutine wakes up.

    A blocked or overloaded loop wakes every coroutine late, the triggerer's "stalled" symptom.
    :param interval: seconds the ticker sleeps between samples.
    """

    interval: float = 0.05
    samples: list[float] = field(default_factory=list)
    #: Seconds since :meth:`start` at which each sample was taken.
    stamps: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def _tick(self) -> None:
        origin = time.monotonic()
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval)
            woke = time.monotonic()
            self.samples.append(max(0.0, woke - started - self.interval))
            self.stamps.append(woke - origin)

    def start(self) -> None:
        """Start ticking in the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        """Stop ticking; the samples stay."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def summary(self, after: float = 0.0) -> dict[str, float]:
        """p50, p99 and max lag in milliseconds, and the number of samples, of samples taken ``after`` s on."""
        samples = [lag for lag, stamp in zip(self.samples, self.stamps, strict=True) if stamp >= after]
        return {
            "p50_ms": percentile(samples, 50) * 1000,
            "p99_ms": percentile(samples, 99) * 1000,
            "max_ms": max(samples, default=math.nan) * 1000,
            "samples": float(len(samples)),
        }


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Current resident set size of this process in MiB, from ``/proc/self/statm``."""
    import os

    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


@dataclass
class GcPauses:
    """Records how long each cyclic garbage collection takes, by generation (a source of loop lag)."""

    pauses: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    _started: float = field(default=0.0, init=False, repr=False)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float]:
        """Collections of the oldest generation, their longest pause and the total time in GC (ms)."""
        every = [p for pauses in self.pauses.values() for p in pauses]
        return {
            "gen2_count": float(len(self.pauses[2])),
            "gen2_max_ms": max(self.pauses[2], default=0.0) * 1000,
            "max_ms": max(every, default=0.0) * 1000,
            "total_ms": sum(every) * 1000,
        }
