"""Fault scenarios as a table: every row of ``tests/harness`` run once, with a clean/DIRTY verdict per row.

Rows: each scenario of :mod:`tests.harness.faults`, the bad-input row (every invalid configuration
fails naming its parameter with zero requests) and the secrets row (a whole DAG run with
``dag.test()`` leaves the keys nowhere). The integration tests in ``tests/integration/{faults,
secrets,bad_input}`` run the same code; this script prints the table (about 40 s) and exits 1 when
a row is dirty::

    python bench/fault_scenarios.py            # every row
    python bench/fault_scenarios.py -k 429     # rows whose name contains "429"
    python bench/fault_scenarios.py --verbose  # with the provider's log output
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the harness lives in tests/harness
    sys.path.insert(0, str(REPO_ROOT))

from bench.stats import format_table  # noqa: E402
from tests.harness.bad_input import BAD_INPUT_ROW, bad_input_row  # noqa: E402
from tests.harness.faults import SCENARIOS, SIM_FIELDS, TASKS, Harness, ScenarioResult, run_scenario  # noqa: E402
from tests.harness.leaks import captured_fds, count_leaks  # noqa: E402
from tests.harness.secrets_dag import SECRETS_ROW, secrets_row  # noqa: E402

HEADERS = (
    "scenario",
    "tasks",
    "succeeded",
    "failed as expected",
    "creations counted",
    "requests",
    "request bound",
    "keys leaked",
    "seconds",
    "verdict",
)
ROWS = [*SCENARIOS, BAD_INPUT_ROW, SECRETS_ROW]


def row(r: ScenarioResult) -> list[object]:
    counted, verdict = f"{r.creations}/{r.expected_creations}", "clean" if r.clean else "DIRTY"
    fields = (r.name, r.tasks, r.succeeded, r.failed_as_expected, counted, r.requests, r.request_bound)
    return [*fields, r.keys_leaked, f"{r.seconds:.1f}", verdict]


def run_row(h: Harness, name: str, quiet: bool) -> ScenarioResult:
    """One row; with ``quiet``, the output is captured (and scanned for the keys) instead of shown."""
    if name == SECRETS_ROW:
        return secrets_row(h)  # captures and scans its own output
    run = bad_input_row if name == BAD_INPUT_ROW else lambda h: run_scenario(h, name)
    if not quiet:
        return run(h)
    with captured_fds() as output:
        result = run(h)
    result.keys_leaked += count_leaks(*output)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="pattern", default="", help="run only scenarios whose name contains this text")
    parser.add_argument("--tasks", type=int, default=TASKS, help=f"tasks per scenario (default {TASKS})")
    parser.add_argument("--verbose", action="store_true", help="show the provider's log output")
    args = parser.parse_args(argv)
    names = [name for name in ROWS if args.pattern.lower() in name.lower()]
    if not names:
        parser.error(f"no scenario matches {args.pattern!r}; rows: {', '.join(ROWS)}")
    # A throwaway AIRFLOW_HOME so the script never touches a real deployment.
    if "AIRFLOW_HOME" not in os.environ:
        home = os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="runway-faults-airflow-")
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if SECRETS_ROW in names:
        from airflow.utils import db

        with captured_fds():
            db.initdb()
    from airflow_provider_runway.simulator import SimulatorConfig, SimulatorThread

    with SimulatorThread(SimulatorConfig(**SIM_FIELDS)) as sim:
        h = Harness(sim, args.tasks)
        try:
            results = [run_row(h, name, quiet=not args.verbose) for name in names]
        finally:
            h.close()
    print(format_table(HEADERS, [row(r) for r in results]))
    dirty = [r for r in results if not r.clean]
    for result in dirty:
        print(result.explain())
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
