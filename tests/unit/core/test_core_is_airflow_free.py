"""``core`` and ``simulator`` are Airflow-free: every module of both imports with Airflow unimportable."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs in a fresh interpreter: any import of ``airflow`` raises, and none may be in sys.modules afterwards.
PROBE = """
import importlib, importlib.abc, pkgutil, sys

class NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"airflow is unimportable here: {name}")
        return None

sys.meta_path.insert(0, NoAirflow())
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    names = [package] + [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
    if len(names) == 1:
        names.append(package)  # a plain module
    for name in names:
        importlib.import_module(name)
        print("imported", name)
loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
print("airflow modules:", loaded)
sys.exit(1 if loaded else 0)
"""


def import_without_airflow(*packages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, *packages], capture_output=True, text=True, timeout=120)


def test_core_and_simulator_do_not_import_airflow() -> None:
    result = import_without_airflow("airflow_provider_runway.core", "airflow_provider_runway.simulator")
    assert result.returncode == 0, result.stdout + result.stderr
    imported = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("imported ")}
    # Every module of both packages was imported, the simulator's server and pytest plugin included.
    assert {
        "airflow_provider_runway.core.webhooks",
        "airflow_provider_runway.core.naming",
        "airflow_provider_runway.simulator.server",
        "airflow_provider_runway.simulator.pytest_plugin",
        "airflow_provider_runway.simulator.cli",
    } <= imported


@pytest.mark.parametrize("module", ["hooks.runway", "transfer.downloads"])
def test_the_probe_catches_a_module_that_needs_airflow(module: str) -> None:
    result = import_without_airflow(f"airflow_provider_runway.{module}")
    assert result.returncode != 0
    assert "airflow is unimportable here" in result.stderr
