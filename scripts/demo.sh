#!/usr/bin/env bash
# The main job on a fresh machine: set up a virtualenv from the project's own files, start the bundled
# Runway simulator on loopback, and run the example DAG `example_runway_persist` end to end with
# `airflow dags test` in a throwaway AIRFLOW_HOME on SQLite. With RUNWAY_API_KEY set it targets the
# real KIE API instead (and says so before spending anything).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .

exec "$VENV/bin/python" scripts/run_demo.py "$@"
