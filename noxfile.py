"""Nox sessions of the test gate: ``lint``, ``tests-airflow-free``, then ``tests-<airflow version>`` per version.

Run through ``bash scripts/test.sh``, which installs pinned ``nox`` and ``uv``, runs these sessions and prints
one summary table from the JUnit XML files they write (``scripts/matrix_summary.py``). Each version session gets
its own uv-made virtualenv with ``apache-airflow==<version>`` pinned by ``constraints/airflow-<version>.txt``.
The tests that import no Airflow (``AIRFLOW_FREE_TESTS``) run once, in ``tests-airflow-free``, a virtualenv
without Airflow (which proves they need none); every version session leaves them out.

Examples::

    bash scripts/test.sh                                  # lint, the Airflow-free tests and every version
    bash scripts/test.sh -s tests-3.3.2                   # one version
    bash scripts/test.sh -s tests-airflow-free            # the Airflow-free tests only
    bash scripts/test.sh -s tests-2.11.2 -- -k sensor     # extra pytest arguments
    bash scripts/test.sh -s tests-3.0.6 -- tests/unit/hooks   # only these paths
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.etree import ElementTree

import nox
from nox.command import CommandFailed

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.stop_on_first_error = False
nox.options.download_python = "never"

PYTHON = "3.11"
REPO_ROOT = Path(__file__).resolve().parent
#: Where every session writes its JUnit XML; ``scripts/matrix_summary.py`` reads it.
REPORT_DIR = Path(os.environ.get("RUNWAY_TEST_REPORTS", REPO_ROOT / "build" / "test-reports"))

#: The newest patch release of every Airflow line the provider supports.
AIRFLOW_VERSIONS = ("2.11.2", "3.0.6", "3.1.8", "3.2.2", "3.3.2")
#: The end-to-end suite (real scheduler, triggerer and api-server/webserver processes) runs on the oldest and
#: the newest line only: it is the slowest suite, and the lines between share 3.3's process model.
E2E_VERSIONS = ("2.11.2", "3.3.2")
#: docker-compose.yml builds on the official ``apache/airflow:3.3.2`` image, so its checks run on 3.3 only.
COMPOSE_TEST = "tests/e2e/test_docker_compose.py"
#: Seconds one session's pytest may run before it is interrupted, so one hang cannot eat CI's whole time.
DEFAULT_SESSION_TIMEOUT = 1800
#: The environment ``lint`` type-checks against, and whose constraints pin the Airflow-free session.
LINT_AIRFLOW = AIRFLOW_VERSIONS[-1]

#: Tests that import no Airflow (folders and files): the Airflow-free ``core``, the simulator, the benchmarks'
#: statistics, webhook verification, the leak scanner's own controls, the gate's summary table. Nothing in them
#: changes with Airflow, so they run once, in ``tests-airflow-free``, and every version session leaves them out.
#: A new test file in one of these folders joins them; if it needs Airflow, that session fails to import it: add
#: it to NEEDS_AIRFLOW.
AIRFLOW_FREE_TESTS = (
    "tests/unit/core",
    "tests/unit/simulator",
    "tests/integration/simulator",
    "tests/unit/gate",
    "tests/unit/bench/test_stats.py",
    "tests/unit/bench/test_triggerer_scale_rounds.py",
    "tests/unit/transfer/callbacks/test_verify_webhook.py",
    "tests/integration/secrets/test_leak_scan_controls.py",
)
#: Test files inside AIRFLOW_FREE_TESTS' folders that do import Airflow: they run in every version session.
NEEDS_AIRFLOW = ("tests/unit/core/test_wait_table.py",)
AIRFLOW_FREE_SESSION = "tests-airflow-free"

#: Longest first, so that the sessions running side by side (``MATRIX_JOBS``, 3 by default) end close together;
#: the short ones fill the gaps at the end. Session seconds of the last gate before the split (issue 24): 3.3 696
#: (with the end-to-end suite; the topology suite adds minutes), 3.2 748, 2.11 457 (end-to-end too, and topology),
#: 3.1 617, 3.0 498.
nox.options.sessions = [
    "tests-3.3.2",
    "tests-3.2.2",
    "tests-2.11.2",
    "tests-3.1.8",
    "tests-3.0.6",
    AIRFLOW_FREE_SESSION,
    "lint",
]


def install_airflow(session: nox.Session, airflow: str) -> None:
    """Install one Airflow release with its constraints, the providers this package needs, and this package."""
    session.install(
        "-c",
        f"constraints/airflow-{airflow}.txt",
        f"apache-airflow=={airflow}",
        "apache-airflow-providers-http",
        "apache-airflow-providers-common-compat",
        "apache-airflow-providers-openlineage",
        "-e",
        ".[test]",
    )


def airflow_free_test_files() -> list[str]:
    """Every test file of AIRFLOW_FREE_TESTS (folders expanded), without NEEDS_AIRFLOW."""
    files = set()
    for entry in AIRFLOW_FREE_TESTS:
        path = REPO_ROOT / entry
        if not path.exists():
            raise FileNotFoundError(f"AIRFLOW_FREE_TESTS names {entry}, which does not exist")
        found = sorted(path.rglob("test_*.py")) if path.is_dir() else [path]
        files.update(str(test.relative_to(REPO_ROOT)) for test in found)
    return sorted(files - set(NEEDS_AIRFLOW))


def test_paths(airflow: str) -> list[str]:
    """The pytest paths (and ignores) of the matrix for one Airflow version: what touches Airflow."""
    paths = ["tests/unit", "tests/integration"]
    if airflow in E2E_VERSIONS:
        paths.append("tests/e2e")
        if airflow != LINT_AIRFLOW:
            paths.append(f"--ignore={COMPOSE_TEST}")
    return paths + [f"--ignore={test}" for test in airflow_free_test_files()]


def names_a_path(arg: str) -> bool:
    """Whether a pytest argument names a test path (``tests/unit``, ``tests/x.py::test_y``)."""
    return not arg.startswith("-") and (REPO_ROOT / arg.split("::", 1)[0]).exists()


def run_pytest(session: nox.Session, matrix_paths: Sequence[str]) -> None:
    """pytest on the matrix's paths (or the paths given after ``--``), with a JUnit XML report and a time limit."""
    posargs = list(session.posargs)
    # Paths given after ``--`` replace the matrix's paths; any other argument is added to them.
    paths = [] if any(names_a_path(arg) for arg in posargs) else list(matrix_paths)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    junit = REPORT_DIR / f"{session.name}.xml"
    limit = int(os.environ.get("RUNWAY_SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT))
    cpu_before = children_cpu_seconds()
    try:
        # SIGINT first, so pytest tears its fixtures (and any Airflow processes) down and writes its JUnit XML.
        session.run(
            "timeout",
            "--signal=INT",
            "--kill-after=120",
            str(limit),
            "python",
            "-m",
            "pytest",
            "-q",
            "-rfE",
            "--durations=10",
            # One module that fails to import on an old Airflow must not hide the rest of that version's results.
            "--continue-on-collection-errors",
            f"--junitxml={junit}",
            "-o",
            f"junit_suite_name={session.name}",
            *paths,
            *posargs,
            external=True,
        )
    except CommandFailed as err:
        if err.return_code in (124, 137):
            session.error(f"pytest was stopped after {limit} s (RUNWAY_SESSION_TIMEOUT)")
        raise
    finally:
        # CPU next to wall time tells a slow test from a waiting one, and compares across runs on a loaded machine.
        cpu_file = REPORT_DIR / f"{session.name}.cpu"
        cpu_file.write_text(f"{children_cpu_seconds() - cpu_before:.1f}\n")


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's ended children (pytest, and the processes it waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_tests_session(airflow: str) -> Callable[[nox.Session], None]:
    """A ``tests-<airflow>`` session: pytest on one Airflow version, with a JUnit XML report."""

    def tests(session: nox.Session) -> None:
        install_airflow(session, airflow)
        session.run("python", "-c", "import airflow, sys; print('Airflow', airflow.__version__, 'on', sys.version)")
        run_pytest(session, test_paths(airflow))

    suites = "unit, integration and end-to-end suites" if airflow in E2E_VERSIONS else "unit and integration suites"
    tests.__doc__ = f"The {suites} on Airflow {airflow}, without the Airflow-free tests."
    return tests


for _version in AIRFLOW_VERSIONS:
    nox.session(name=f"tests-{_version}", python=PYTHON, allow_parallel=True)(make_tests_session(_version))

#: Prints the package's requirements and its ``[test]`` extra's, without Airflow and its providers; run by the
#: session's own Python (3.11, so ``tomllib``), whatever Python runs nox.
_REQUIREMENTS_WITHOUT_AIRFLOW = """
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    if not re.match(r"apache[-_.]airflow", requirement, re.IGNORECASE):
        print(requirement)
"""
_NO_AIRFLOW = "import importlib.util as u, sys; sys.exit('Airflow is installed' if u.find_spec('airflow') else None)"


@nox.session(name=AIRFLOW_FREE_SESSION, python=PYTHON, allow_parallel=True)
def tests_airflow_free(session: nox.Session) -> None:
    """The tests that import no Airflow, once, in a virtualenv without Airflow (which proves they need none)."""
    requirements = session.run("python", "-c", _REQUIREMENTS_WITHOUT_AIRFLOW, silent=True)
    assert isinstance(requirements, str)
    session.install("-c", f"constraints/airflow-{LINT_AIRFLOW}.txt", *requirements.splitlines())
    session.install("--no-deps", "-e", ".")
    session.run("python", "-c", _NO_AIRFLOW)
    run_pytest(session, airflow_free_test_files())


@nox.session(python=PYTHON, allow_parallel=True)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy, on the newest Airflow; every check runs even if one fails."""
    install_airflow(session, LINT_AIRFLOW)
    checks = {
        "ruff check": ["ruff", "check", "."],
        "ruff format --check": ["ruff", "format", "--check", "."],
        "mypy": ["mypy"],
    }
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(suites, "testsuite", name=session.name)
    failed = []
    for name, argv in checks.items():
        started = time.monotonic()
        case = ElementTree.SubElement(suite, "testcase", classname="lint", name=name)
        try:
            session.run(*argv)
        except CommandFailed as err:
            failed.append(name)
            ElementTree.SubElement(case, "failure", message=str(err.reason or "failed"))
        case.set("time", f"{time.monotonic() - started:.3f}")
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(suites).write(REPORT_DIR / f"{session.name}.xml", encoding="utf-8", xml_declaration=True)
    if failed:
        session.error(f"lint failed: {', '.join(failed)}")
