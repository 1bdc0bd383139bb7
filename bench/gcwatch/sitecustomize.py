"""Records the triggerer's long garbage-collection passes for ``bench.triggerer_real`` (not for anything else).

``bench.triggerer_real`` puts this folder on ``PYTHONPATH`` with ``RUNWAY_BENCH_GC_LOG`` naming a file. In a process
started as ``airflow triggerer`` (and the runner process it forks) each collection of 50 ms or more is appended to
that file as ``<pid> <epoch at its start> <milliseconds> <generation>``: the benchmark then tells which of the
triggerer's blocked-loop warnings a collection explains. Any other process ignores this module.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_LOG = os.environ.get("RUNWAY_BENCH_GC_LOG")
_LONG = 0.05


def _watch(path: str) -> None:
    started: dict[str, float] = {}

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started["wall"], started["clock"] = time.time(), time.perf_counter()
            return
        took = time.perf_counter() - started.get("clock", time.perf_counter())
        if took >= _LONG:
            with open(path, "a") as out:
                out.write(f"{os.getpid()} {started['wall']:.3f} {took * 1000:.0f} {info.get('generation')}\n")

    gc.callbacks.append(callback)


if _LOG and len(sys.argv) > 1 and sys.argv[1] == "triggerer":
    _watch(_LOG)
