#!/usr/bin/env bash
# The whole test gate: lint, the Airflow-free tests once (in a virtualenv without Airflow), then pytest on every
# supported Airflow version (the version matrix), run by nox (noxfile.py) in uv-made virtualenvs, ending with one
# summary table (scripts/matrix_summary.py).
#
# Arguments go to nox, pytest arguments after `--`:
#   bash scripts/test.sh                                   # Airflow 2.11.2 ... 3.3.2, airflow-free, and lint
#   bash scripts/test.sh -s tests-3.3.2 -- -k sensor       # one version, some tests
#   bash scripts/test.sh -l                                # list the sessions
# Three sessions run at a time (MATRIX_JOBS=3, the default; each prints its output as one block when it ends,
# and each pytest process has its own AIRFLOW_HOME); MATRIX_JOBS=1 runs them one after another, streaming.
# Three on two cores because the sessions mostly wait (for the simulator's generations, Airflow's heartbeats and
# polls): a session's pytest uses about a third of one core (the table's "cpu s" against "pytest s").
# RUNWAY_SESSION_TIMEOUT (seconds, default 1800) interrupts one session's pytest if it hangs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TOOLS_VENV="${TOOLS_VENV:-.venv-tools}"
TOOLS=(nox==2026.10.20 uv==0.13.9)
REPORTS="${RUNWAY_TEST_REPORTS:-$PWD/build/test-reports}"
JOBS="${MATRIX_JOBS:-3}"

# A small virtualenv holding only the pinned nox and uv; rebuilt when the pins change.
if [ "$(cat "$TOOLS_VENV/.pins" 2>/dev/null)" != "${TOOLS[*]}" ]; then
  echo "== installing ${TOOLS[*]} into $TOOLS_VENV"
  rm -rf "$TOOLS_VENV"
  "$PYTHON" -m venv "$TOOLS_VENV"
  if ! pip_log=$("$TOOLS_VENV/bin/python" -m pip install --quiet "${TOOLS[@]}" 2>&1); then
    echo "$pip_log" >&2
    exit 1
  fi
  echo "${TOOLS[*]}" >"$TOOLS_VENV/.pins"
fi
export PATH="$PWD/$TOOLS_VENV/bin:$PATH"
# Python itself comes from the machine; uv must not try to download one.
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"

for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -l | --list | --list-sessions | -h | --help | --version | --usage) exec nox "$@" ;;
  esac
done

parallel=()
if [ "$JOBS" != 1 ]; then
  parallel=(--parallel "$JOBS")
fi

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export RUNWAY_TEST_REPORTS="$REPORTS"
started=$(date +%s)
set +e
nox --report "$REPORTS/nox.json" "${parallel[@]}" "$@"
nox_status=$?
"$TOOLS_VENV/bin/python" scripts/matrix_summary.py "$REPORTS/nox.json" "$REPORTS" "$(($(date +%s) - started))"
summary_status=$?
set -e
if [ "$summary_status" -ne 0 ]; then
  exit "$summary_status"
fi
exit "$nox_status"
