"""The simulator's pytest plugin is opt-in: a plain pytest run does not load it, the README's line does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PLUGIN = "airflow_provider_runway.simulator.pytest_plugin"
README = Path(__file__).resolve().parents[3] / "README.md"
PROBE = "def test_probe(runway_sim):\n    assert runway_sim.url.startswith('http://127.0.0.1:')\n"


def documented_line() -> str:
    """The ``pytest_plugins`` line the README tells users to put in their conftest.py."""
    match = re.search(r"^pytest_plugins = \[.*\]$", README.read_text(), re.MULTILINE)
    assert match, "README.md documents no pytest_plugins line"
    return match.group(0)


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest --trace-config`` in ``project``, with this interpreter (the provider is installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--trace-config", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plain_pytest_does_not_load_the_simulator_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    run = run_pytest(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "fixture 'runway_sim' not found" in run.stdout
    assert PLUGIN not in run.stdout


def test_the_documented_line_loads_it(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "conftest.py").write_text(documented_line() + "\n")
    run = run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert PLUGIN in run.stdout
    assert "1 passed" in run.stdout
