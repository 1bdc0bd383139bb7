"""Memory stays flat while a file several times the chunk size is streamed to disk.

The simulator runs in its own process here, so tracemalloc sees only the client side: the
provider's download loop, requests/urllib3 and the local file writes.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.transfer.downloads import persist_task_result

from .conftest import connect, finish_task

pytestmark = pytest.mark.integration

FILE_SIZE = 32 * 1024 * 1024
CHUNK_SIZE = 256 * 1024


@pytest.fixture
def external_sim() -> Iterator[SimulatorClient]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_runway.simulator.cli",
        "--port=0",
        f"--video-size-bytes={FILE_SIZE}",
        "--wait-seconds=0.05",
        "--queueing-seconds=0.05",
        "--generating-seconds=0.1",
        "--concurrency-limit=0",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on " in line, f"runway-sim did not start: {line!r}"
        yield SimulatorClient(line.rsplit("listening on ", 1)[1].strip())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_peak_memory_is_a_small_fraction_of_the_file(
    external_sim: SimulatorClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook: RunwayHook = connect(monkeypatch, external_sim.url)
    task = finish_task(hook)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = persist_task_result(task, str(tmp_path), hook=hook, include_thumbnail=False, chunk_size=CHUNK_SIZE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = result["video_size"]
    assert size >= FILE_SIZE
    assert size == (tmp_path / f"{task['task_id']}.mp4").stat().st_size
    ratio = peak / size
    print(f"flat-memory: file {size} B, chunk {CHUNK_SIZE} B, traced peak {peak} B, ratio {ratio:.4f}")
    # A copy that buffered the body would peak at >= 1.0; streaming stays at a few chunks.
    assert ratio < 0.1, f"peak {peak} B while streaming {size} B"
    assert peak < 8 * CHUNK_SIZE
