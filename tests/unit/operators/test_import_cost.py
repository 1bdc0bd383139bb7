"""What a worker pays to parse a DAG that uses the provider."""

from __future__ import annotations

import subprocess
import sys


def test_parsing_a_dag_with_the_operators_does_not_import_aiohttp() -> None:
    # aiohttp serves only the triggerer's waits; every task process and DAG parse would pay its import.
    code = (
        "import sys\n"
        "import airflow_provider_runway.operators.runway, airflow_provider_runway.sensors.runway\n"
        "import airflow_provider_runway.hooks.runway\n"
        "print(sorted(m for m in ('aiohttp', 'yarl') if m in sys.modules))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.strip().splitlines()[-1] == "[]"
