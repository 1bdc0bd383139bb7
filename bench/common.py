"""What the benchmarks share: the simulator in its own process, the connection, task creation."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from airflow_provider_runway.core.errors import parse_envelope
from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.core.wire import RUNWAY_GENERATE_PATH, created_task_id

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
#: Any non-empty key is an account on the simulator; long enough for Airflow's secrets masker.
API_KEY = "bench-api-key-0001"
#: Sockets: one per concurrent wait on each side, plus the ones closing.
NOFILE = 20_000
REQUEST = GenerateRequest(prompt="A benchmark of many waits", duration=5, quality="720p", aspect_ratio="16:9")


def raise_nofile() -> None:
    """Raise this process's open-file limit as far as allowed (inherited by child processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@dataclass(frozen=True)
class SimPhases:
    """Task phases of the simulator, in simulated seconds, and the factor to real seconds.

    Generation lasts ``generating`` plus a uniform spread of ``jitter`` either way, so tasks finish
    at random times between :attr:`earliest` and :attr:`latest` (real seconds after creation).
    """

    wait: float
    queueing: float
    generating: float
    jitter: float
    time_scale: float

    @property
    def earliest(self) -> float:
        return (self.wait + self.queueing + max(0.0, self.generating - self.jitter)) * self.time_scale

    @property
    def latest(self) -> float:
        return (self.wait + self.queueing + self.generating + self.jitter) * self.time_scale

    def cli_args(self) -> list[str]:
        return [
            "--wait-seconds",
            str(self.wait),
            "--queueing-seconds",
            str(self.queueing),
            "--generating-seconds",
            str(self.generating),
            "--generating-jitter",
            str(self.jitter),
            "--time-scale",
            str(self.time_scale),
        ]


class SimProcess:
    """``runway-sim`` in its own process (no concurrency limit, ample credits), on a free port."""

    def __init__(self, phases: SimPhases, seed: int = 7, log_path: Path | None = None) -> None:
        self.phases = phases
        self.seed = seed
        self.log_path = log_path
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimProcess:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_runway.simulator.cli",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--concurrency-limit",
            "0",
            "--rate-limit-creates",
            "0",
            "--starting-credits",
            str(10**12),
            "--seed",
            str(self.seed),
            *self.phases.cli_args(),
        ]
        stderr = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, preexec_fn=raise_nofile
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if "listening on" not in line:
            self.__exit__()
            raise RuntimeError(f"runway-sim did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0


def connection_env(url: str) -> dict[str, str]:
    """Environment for a client process: the Runway connection and a private AIRFLOW_HOME."""
    env = dict(os.environ)
    env["AIRFLOW_CONN_RUNWAY_DEFAULT"] = json.dumps({"conn_type": "runway", "host": url, "password": API_KEY})
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-home-"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


async def create_tasks(url: str, count: int, spread: float = 0.0, parallel: int = 50) -> list[str]:
    """Create ``count`` Runway generate tasks with plain POSTs, the i-th ``spread * i / count`` s after the first."""
    semaphore = asyncio.Semaphore(parallel)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    payload = REQUEST.to_payload()

    async def one(session: aiohttp.ClientSession, index: int) -> str:
        await asyncio.sleep(spread * index / count)
        async with semaphore, session.post(f"{url}{RUNWAY_GENERATE_PATH}", json=payload) as response:
            body = await response.read()
        task_id = created_task_id(parse_envelope(response.status, body, method="POST", path=RUNWAY_GENERATE_PATH))
        if task_id is None:
            raise RuntimeError("the simulator returned no taskId")
        return task_id

    async with aiohttp.ClientSession(headers=headers) as session:
        return list(await asyncio.gather(*(one(session, i) for i in range(count))))


def run_worker(module: str, args: Sequence[str], env: dict[str, str], log_path: Path, timeout: float) -> Any:
    """Run ``python -m module --worker ...`` and return the JSON it writes to its ``--result`` file."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    try:
        with open(log_path, "w") as log:
            started = time.monotonic()
            completed = subprocess.run(
                [sys.executable, "-m", module, "--worker", *args, "--result", str(result_path)],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                preexec_fn=raise_nofile,
                check=False,
            )
        if completed.returncode != 0:
            raise RuntimeError(
                f"worker {' '.join(args[:2])} exited {completed.returncode} after "
                f"{time.monotonic() - started:.0f} s; see {log_path}"
            )
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
