"""Capacity of runway-sim: status reads per second and memory with 10,000 live tasks.

Starts ``runway-sim`` in its own process, creates the tasks, then reads ``record-detail`` of random
tasks from this process through one shared aiohttp session and prints reads/s and the simulator's
RSS. Usage::

    python bench/sim_capacity.py [--tasks 10000] [--seconds 10] [--concurrency 64] [--pin]

``--pin`` pins the simulator to CPU 0 and this client to CPU 1 (Linux), so the figure is "one core".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time
from typing import Any

import aiohttp
import psutil

KEY = "bench-key"


def start_simulator(pin: bool) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_runway.simulator.cli",
        "--port",
        "0",
        "--concurrency-limit",
        "0",
        "--rate-limit-creates",
        "0",
        "--starting-credits",
        str(10**9),
        "--generating-seconds",
        "3600",  # keep every task live during the measurement
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"runway-sim did not start: {line!r}")
    if pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {0})
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    return proc, match.group(1)


async def create_tasks(session: aiohttp.ClientSession, url: str, count: int, concurrency: int) -> list[str]:
    body = {"prompt": "benchmark", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}
    ids: list[str] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            async with session.post(f"{url}/api/v1/runway/generate", json=body) as response:
                payload: dict[str, Any] = await response.json()
                ids.append(payload["data"]["taskId"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def hammer(session: aiohttp.ClientSession, url: str, ids: list[str], seconds: float, concurrency: int) -> int:
    deadline = time.perf_counter() + seconds
    done = 0
    errors = 0
    rng = random.Random(0)

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            task_id = rng.choice(ids)
            async with session.get(f"{url}/api/v1/runway/record-detail", params={"taskId": task_id}) as response:
                payload = await response.json()
                if payload.get("code") != 200:
                    errors += 1
                done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        print(f"errors: {errors}")
    return done


async def run(args: argparse.Namespace) -> None:
    proc, url = start_simulator(args.pin)
    try:
        sim = psutil.Process(proc.pid)
        rss_idle = sim.memory_info().rss
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            started = time.perf_counter()
            ids = await create_tasks(session, url, args.tasks, args.concurrency)
            create_rate = len(ids) / (time.perf_counter() - started)
            rss_loaded = sim.memory_info().rss
            cpu_before = sim.cpu_times()
            started = time.perf_counter()
            reads = await hammer(session, url, ids, args.seconds, args.concurrency)
            elapsed = time.perf_counter() - started
            cpu_after = sim.cpu_times()
        sim_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        print(f"tasks created: {len(ids)} ({create_rate:.0f}/s)")
        print(
            f"status reads: {reads} in {elapsed:.1f}s = {reads / elapsed:.0f} reads/s (concurrency {args.concurrency})"
        )
        share = 100 * sim_cpu / elapsed
        print(f"simulator CPU during reads: {sim_cpu:.2f} s in {elapsed:.1f} s ({share:.0f}% of one core)")
        if sim_cpu > 0:
            per_read = 1e6 * sim_cpu / reads
            print(f"simulator cost: {per_read:.0f} us CPU per read = {reads / sim_cpu:.0f} reads per CPU-second")
        print(f"simulator RSS: {rss_idle / 2**20:.1f} MiB idle, {rss_loaded / 2**20:.1f} MiB with {len(ids)} tasks")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pin", action="store_true", help="pin simulator and client to different CPUs")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
