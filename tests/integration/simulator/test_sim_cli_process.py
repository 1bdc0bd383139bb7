"""The ``runway-sim`` command: starts, prints its URL, serves the walkthrough, stops on SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_runway.core import wire
from airflow_provider_runway.simulator.media import mp4_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_runway.simulator.cli",
        "--port",
        "0",
        "--time-scale",
        "0.005",
        "--api-key",
        "demo-key",
        "--error-style",
        "http",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"runway-sim listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        yield proc, match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_walkthrough_against_the_command(sim_process):
    proc, url = sim_process
    auth = {"Authorization": "Bearer demo-key"}
    created = requests.post(
        url + wire.RUNWAY_GENERATE_PATH,
        json={"prompt": "A lighthouse at dusk", "duration": 5, "quality": "720p", "aspectRatio": "16:9"},
        headers=auth,
        timeout=10,
    )
    task_id = created.json()["data"]["taskId"]
    deadline = time.monotonic() + 10
    state = ""
    while state != "success" and time.monotonic() < deadline:
        record = requests.get(
            url + wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": task_id}, headers=auth, timeout=10
        )
        state = record.json()["data"]["state"]
        time.sleep(0.05)
    assert state == "success"
    video = requests.get(record.json()["data"]["videoInfo"]["videoUrl"], timeout=10)
    assert video.content == mp4_bytes(5)
    refused = requests.get(url + wire.CREDIT_PATH, headers={"Authorization": "Bearer other"}, timeout=10)
    assert refused.status_code == 401
    proc.terminate()
    assert proc.wait(10) == 0


def test_bad_flags_exit_with_an_error():
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_runway.simulator.cli", "--time-scale", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "time_scale" in done.stderr
