"""Submission overhead: create tasks through ``RunwayHook.create_task`` against a bare ``requests.Session``.

Both clients send the same POSTs, one after another, to the simulator in its own process; each
runs in a fresh process (warm-up excluded) and the best of a few rounds is kept, so the ratio
shows the hook's own cost: auth, validation, envelope checks, retry machinery and logging.

Usage (from the repository root)::

    python -m bench.submission_overhead                 # 1,000 creates per client, best of 3 rounds
    python -m bench.submission_overhead --count 200 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import API_KEY, OUT, REQUEST, SimPhases, SimProcess, connection_env, run_worker
from bench.stats import cpu_seconds, fmt, format_table, ratio

CLIENTS = ("bare", "hook")
WARM_UP = 20
#: Long phases: nothing finishes while the benchmark runs.
PHASES = SimPhases(wait=600.0, queueing=600.0, generating=600.0, jitter=0.0, time_scale=1.0)


def _bare_client(url: str) -> Callable[[], str]:
    import requests

    from airflow_provider_runway.core.wire import RUNWAY_GENERATE_PATH

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    endpoint = url + RUNWAY_GENERATE_PATH
    payload = REQUEST.to_payload()

    def create() -> str:
        response = session.post(endpoint, json=payload, timeout=30)
        response.raise_for_status()
        return str(response.json()["data"]["taskId"])

    return create


def _hook_client() -> Callable[[], str]:
    from airflow_provider_runway.hooks.runway import RunwayHook

    hook = RunwayHook()

    def create() -> str:
        return hook.create_task(REQUEST)

    return create


def worker_main(args: argparse.Namespace) -> int:
    create = _bare_client(args.url) if args.client == "bare" else _hook_client()
    for _ in range(WARM_UP):
        create()
    rounds = []
    for _ in range(args.rounds):
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        ids = {create() for _ in range(args.count)}
        rounds.append(
            {"wall_s": time.perf_counter() - wall_before, "cpu_s": cpu_seconds() - cpu_before, "unique": len(ids)}
        )
    Path(args.result).write_text(json.dumps({"client": args.client, "count": args.count, "rounds": rounds}))
    return 0


def measure(url: str, count: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per-create wall and CPU milliseconds of each client (best round)."""
    from airflow_provider_runway.simulator import SimulatorClient

    client = SimulatorClient(url, timeout=60)
    figures: dict[str, dict[str, float]] = {}
    for name in CLIENTS:
        client.reset()
        result: dict[str, Any] = run_worker(
            "bench.submission_overhead",
            [name, "--url", url, "--count", str(count), "--rounds", str(rounds)],
            connection_env(url),
            OUT / f"worker-submit-{name}.log",
            timeout=600,
        )
        if any(r["unique"] != count for r in result["rounds"]):
            raise RuntimeError(f"{name}: duplicate or missing task ids")
        figures[name] = {
            "wall_ms": min(r["wall_s"] for r in result["rounds"]) / count * 1000,
            "cpu_ms": min(r["cpu_s"] for r in result["rounds"]) / count * 1000,
            "created": float(client.counters()["tasks_total"]),
        }
    return figures


def table(figures: dict[str, dict[str, float]], count: int, rounds: int) -> str:
    bare, hook = figures["bare"], figures["hook"]
    wall_ratio, cpu_ratio = ratio(hook["wall_ms"], bare["wall_ms"]), ratio(hook["cpu_ms"], bare["cpu_ms"])
    rows: list[list[object]] = [
        [name, fmt(f["wall_ms"], 3), fmt(f["cpu_ms"], 3), fmt(int(f["created"]))] for name, f in figures.items()
    ]
    rows.append(["hook/bare", fmt(wall_ratio), fmt(cpu_ratio), ""])
    verdict = "PASS" if wall_ratio <= 1.2 else "FAIL"
    title = f"Submission overhead: {count:,} creates per client, best of {rounds} rounds (target wall <= 1.2x)"
    return format_table(["client", "wall ms/create", "client CPU ms/create", "tasks created"], rows, title) + (
        f"\nwall-time ratio {wall_ratio:.2f}x: {verdict}"
    )


def run(count: int = 1000, rounds: int = 3, url: str | None = None) -> str:
    """Measure both clients (starting a simulator unless ``url`` is given) and return the table."""
    OUT.mkdir(parents=True, exist_ok=True)
    if url is not None:
        return table(measure(url, count, rounds), count, rounds)
    with SimProcess(PHASES, log_path=OUT / "sim-submission.log") as sim:
        return table(measure(sim.url, count, rounds), count, rounds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="creates per client and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client; the best is kept")
    parser.add_argument("--worker", dest="client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return worker_main(args)
    report = run(args.count, args.rounds)
    print(report)
    (OUT / "submission_overhead.txt").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
