from __future__ import annotations

import subprocess
import sys


def test_core_and_simulator_do_not_import_airflow() -> None:
    code = (
        "import sys, airflow_provider_runway.core, airflow_provider_runway.core.webhooks, "
        "airflow_provider_runway.core.wire\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
