"""Run ``example_runway_persist`` once with ``airflow dags test`` and report the stored video.

Against the bundled simulator by default; against the real KIE API when RUNWAY_API_KEY is set.
Called by ``scripts/demo.sh``, which prepares the virtualenv first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAG_ID = "example_runway_persist"
REAL_API = "https://api.kie.ai"


def start_simulator(log_path: Path) -> tuple[subprocess.Popen[str], str]:
    """Start runway-sim on a free loopback port; return the process and its URL."""
    command = [str(BIN / "runway-sim"), "--host", "127.0.0.1", "--port", "0", "--time-scale", "0.05"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "http://" in line:
            return process, line[line.index("http://") :].split()[0]
        if process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"runway-sim did not start; see {log_path}")


def airflow_env(home: Path, conn: dict[str, str], output_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(conn),
            "RUNWAY_OUTPUT_DIR": output_dir.as_uri() + "/",
        }
    )
    env.setdefault("RUNWAY_POLL_INTERVAL", "1" if "RUNWAY_API_KEY" not in os.environ else "10")
    return env


def describe_video(path: Path) -> str:
    ffprobe = shutil.which("ffprobe")
    if not ffprobe:
        return "ffprobe not installed; skipped the format check"
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=format_name,duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ffprobe rejected {path}: {result.stderr.strip()}")
    return f"ffprobe: {json.loads(result.stdout)['format']}"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="runway-demo-"))
    output_dir = Path(os.environ.get("RUNWAY_DEMO_OUTPUT", REPO / ".demo" / "videos")).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    api_key = os.environ.get("RUNWAY_API_KEY")
    simulator = None
    try:
        if api_key:
            print(f"RUNWAY_API_KEY is set: targeting the REAL KIE API at {REAL_API}.")
            print("This creates one 5 s 720p Gen-3 video and spends real credits (about 60-70).")
            conn = {"conn_type": "runway", "host": REAL_API, "password": api_key}
        else:
            simulator, url = start_simulator(work / "runway-sim.log")
            print(f"No RUNWAY_API_KEY: using the bundled simulator at {url} (no credits spent).")
            conn = {"conn_type": "runway", "host": url, "password": "demo-key"}
        env = airflow_env(work / "airflow", conn, output_dir)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        print(f"Running `airflow dags test {DAG_ID}` (AIRFLOW_HOME={env['AIRFLOW_HOME']})...", flush=True)
        started = time.monotonic()
        result = subprocess.run([str(BIN / "airflow"), "dags", "test", DAG_ID], env=env, check=False)
        elapsed = time.monotonic() - started
        videos = sorted(output_dir.rglob("*.mp4"), key=lambda p: p.stat().st_mtime)
        if result.returncode != 0 or not videos:
            print(f"The DAG run failed after {elapsed:.1f} s (exit {result.returncode}); see the log above.")
            return 1
        video = videos[-1]
        print(f"\nDAG {DAG_ID} succeeded in {elapsed:.1f} s.")
        print(f"Stored MP4: {video} ({video.stat().st_size} bytes)")
        print(describe_video(video))
        return 0
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
