"""Wait overhead: what one trigger wait costs on its own, beyond the status read it makes.

A triggerer whose waits do not overlap (a small deployment, or a batch trickling through a pool)
starts every wait from nothing: the trigger, its hook, the connection, an HTTP session, the final
parse and the event. Here ``--count`` tasks that have already finished are waited for one after
another on one event loop, each by a ``RunwayTaskTrigger`` that reads once and ends, against the
same single read made with a bare aiohttp session kept open (the floor). Both run in the same
process on the same tasks, alternating for ``--rounds`` rounds; the median round is reported.

Usage (from the repository root)::

    python -m bench.wait_overhead                  # 1,000 waits per client, 3 rounds
    python -m bench.wait_overhead --count 200 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from bench.common import API_KEY, OUT, SimPhases, SimProcess, connection_env, create_tasks
from bench.stats import fmt, format_table, ratio

CONN_ID = "runway_default"
#: Tasks finish 0.1 s after creation: every wait's first read finds its task done.
PHASES = SimPhases(wait=0.0, queueing=0.0, generating=1.0, jitter=0.0, time_scale=0.1)

Wait = Callable[[str], Awaitable[None]]


def _floor(url: str) -> tuple[Wait, Callable[[], Awaitable[None]]]:
    import aiohttp

    from airflow_provider_runway.core.results import RUNWAY_STATES
    from airflow_provider_runway.core.wire import status_path

    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})
    endpoint = url + status_path("runway")

    async def wait(task_id: str) -> None:
        async with session.get(endpoint, params={"taskId": task_id}) as response:
            body = await response.read()
        status = RUNWAY_STATES.get(json.loads(body)["data"]["state"])
        if status is None or not status.is_terminal:
            raise RuntimeError(f"task {task_id} is not finished")

    return wait, session.close


def _ours() -> Wait:
    from airflow_provider_runway.triggers.runway import RunwayTaskTrigger

    async def wait(task_id: str) -> None:
        trigger = RunwayTaskTrigger(task_id, runway_conn_id=CONN_ID, poll_interval=5.0, end_time=time.time() + 60)
        async for event in trigger.run():
            if event.payload["status"] != "success":
                raise RuntimeError(f"task {task_id}: {event.payload}")
            return

    return wait


async def _cpu_per_wait(wait: Wait, task_ids: Sequence[str]) -> float:
    started = time.process_time()
    for task_id in task_ids:
        await wait(task_id)
    return (time.process_time() - started) / len(task_ids) * 1e6


async def measure(url: str, count: int, rounds: int) -> dict[str, list[float]]:
    """CPU microseconds per wait, per client and round."""
    import airflow.sdk  # noqa: F401  (what a triggerer process holds anyway)
    from airflow.providers.common.compat.sdk import BaseHook

    BaseHook.get_connection(CONN_ID)  # configuration and secrets backends loaded, as in a running triggerer
    task_ids = await create_tasks(url, count)
    await asyncio.sleep(PHASES.latest + 0.5)
    floor, close = _floor(url)
    clients = {"floor": floor, "ours": _ours()}
    for wait in clients.values():  # warm-up: first imports and the first connection read stay outside
        await wait(task_ids[0])
    figures: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for round_no in range(rounds):
            for name in clients if round_no % 2 == 0 else reversed(list(clients)):
                figures[name].append(await _cpu_per_wait(clients[name], task_ids))
    finally:
        await close()
    return figures


def report(figures: dict[str, list[float]], count: int) -> str:
    floor, ours = statistics.median(figures["floor"]), statistics.median(figures["ours"])
    body = [
        [name, fmt(count), " ".join(fmt(x, 0) for x in values), fmt(statistics.median(values), 0)]
        for name, values in figures.items()
    ]
    table = format_table(
        ["client", "waits", "CPU us per wait, by round", "median"],
        body,
        title="One wait at a time (each: one read of a finished task)",
    )
    return f"{table}\nours / floor: {fmt(ratio(ours, floor))}; a wait's own cost beyond its read: {ours - floor:.0f} us"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="waits per client and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    with SimProcess(PHASES, log_path=OUT / "sim-wait-overhead.log") as sim:
        os.environ.update(connection_env(sim.url))
        figures = asyncio.run(measure(sim.url, args.count, max(1, args.rounds)))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    text = f"Run at {stamp}\n\n{report(figures, args.count)}"
    print(text)
    (OUT / "wait_overhead.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
