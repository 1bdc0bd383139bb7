"""Shared fakes of the unit tests: a clock that never waits, and async Runway hooks answering from a script."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from airflow_provider_runway.core.results import RunwayTask

#: A script entry that makes the read hang for an hour, like a hook still honouring a long Retry-After.
HANG = Exception("hang")


class FakeClock:
    """Stands in for a module's ``time``: ``sleep`` advances ``time`` and is recorded, nothing waits."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAsyncHook:
    """An async Runway hook for a trigger: ``aget_task`` is given; counts reads and context entries."""

    def __init__(self, aget_task: Callable[[str, Any], Awaitable[RunwayTask]]) -> None:
        self._aget_task = aget_task
        self.polls = 0
        self.entered = 0
        self.exited = 0

    async def __aenter__(self) -> FakeAsyncHook:
        self.entered += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited += 1

    async def aget_task(self, task_id: str, family: Any = "runway") -> RunwayTask:
        self.polls += 1
        return await self._aget_task(task_id, family)


def scripted_hook(*script: RunwayTask | Exception, task_id: str | None = None) -> FakeAsyncHook:
    """A hook answering each read with the next entry of ``script`` (the last one repeats).

    An exception entry is raised, :data:`HANG` hangs; ``task_id``, when given, is the only id it may be asked.
    """
    entries = list(script)

    async def answer(asked: str, family: Any) -> RunwayTask:
        assert task_id is None or asked == task_id, f"asked for {asked}, not {task_id}"
        item = entries.pop(0) if len(entries) > 1 else entries[0]
        if item is HANG:
            await asyncio.sleep(3600)
        if isinstance(item, Exception):
            raise item
        return item

    return FakeAsyncHook(answer)
