"""Summary table of a ``nox`` run of the version matrix, from nox's JSON report and each session's JUnit XML.

Prints one row per session that ran (``lint``, ``airflow-free``, then each Airflow version): passed, failed
(failures and errors, collection errors included), skipped, pytest's own seconds and the CPU seconds of pytest
and the processes it started (``<session>.cpu``, written by ``noxfile.py``; CPU far below wall time means the
tests mostly wait), and the session's seconds (environment set-up included); then how many distinct tests ran
(a test that runs on five Airflow versions counts once), and the totals as a plain ``N passed, M failed`` line,
which is always the last line. Exits 1 when any session
failed, a test session ran no test, or a session left no JUnit XML; every such session counts at least one
failure in the totals, so ``M`` is 0 exactly when the exit status is 0.

Usage: ``python scripts/matrix_summary.py NOX_REPORT_JSON JUNIT_DIR [WALL_SECONDS]``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree


@dataclass
class Row:
    """One session's figures."""

    name: str
    status: str
    seconds: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    note: str = ""
    pytest_seconds: float | None = None
    cpu_seconds: float | None = None
    #: ``module::test[params]`` of every test case in the session's JUnit XML.
    tests: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.status == "success" and self.failed == 0 and not self.note


#: An object's default ``repr`` in a parametrized test's id (``<object object at 0x7f...>``) differs per run.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def test_id(case: ElementTree.Element) -> str:
    """The test a JUnit test case ran, the same in every session that runs it."""
    return _ADDRESS.sub("0x?", f"{case.get('classname', '')}::{case.get('name', '')}")


def count_junit(path: Path) -> tuple[int, int, int, set[str]]:
    """Passed, failed (failure or error, setup and teardown errors included) and skipped test cases, and their ids."""
    passed = failed = skipped = 0
    tests = set()
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        tests.add(test_id(case))
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, tests


def suite_seconds(path: Path) -> float | None:
    """pytest's own run time, from the JUnit XML's test suite (``None`` where there is none, as for lint)."""
    suite = next(ElementTree.parse(path).getroot().iter("testsuite"), None)
    seconds = suite.get("time") if suite is not None else None
    return float(seconds) if seconds else None


def build_rows(report: dict, junit_dir: Path) -> list[Row]:
    """One row per session in nox's report, in the order nox ran them."""
    rows = []
    for entry in report.get("sessions", []):
        name = str(entry["name"])
        row = Row(name=name, status=str(entry.get("result", "?")), seconds=float(entry.get("duration") or 0.0))
        junit = junit_dir / f"{name}.xml"
        if row.status == "skipped":
            row.note = f"skipped by nox: {entry.get('reason') or 'no reason given'}"
        elif not junit.exists():
            row.note = "no JUnit XML: the session failed before its tests ran (see its output above)"
        else:
            try:
                row.passed, row.failed, row.skipped, row.tests = count_junit(junit)
                row.pytest_seconds = suite_seconds(junit)
            except ElementTree.ParseError as err:
                row.note = f"unreadable JUnit XML: {err}"
            else:
                if row.passed + row.failed == 0:
                    row.note = "ran no test"
                elif row.status != "success" and row.failed == 0:
                    reason = entry.get("reason") or "see its output above"
                    row.note = f"session {row.status} ({reason}), though no test failed"
        cpu = junit_dir / f"{name}.cpu"
        if cpu.exists():
            row.cpu_seconds = float(cpu.read_text())
        if not row.ok and row.failed == 0:
            row.failed = 1  # the session itself is the failure, so the totals never read "0 failed"
        rows.append(row)
    return sorted(rows, key=order)


def order(row: Row) -> tuple[int, tuple[int, ...], str]:
    """``lint`` first, then ``airflow-free``, then the Airflow versions oldest first, then anything else."""
    version = row.name.removeprefix("tests-")
    if row.name == "lint":
        return (0, (), "")
    if row.name == "tests-airflow-free":
        return (1, (), "")
    if row.name.startswith("tests-") and version.replace(".", "").isdigit():
        return (2, tuple(int(part) for part in version.split(".")), "")
    return (3, (), row.name)


def render(rows: list[Row], wall_seconds: float | None) -> list[str]:
    """The table, its notes, and the totals line last."""
    headers = ("session", "passed", "failed", "skipped", "pytest s", "cpu s", "seconds", "result")
    table = [
        (
            row.name.removeprefix("tests-"),
            str(row.passed),
            str(row.failed),
            str(row.skipped),
            "-" if row.pytest_seconds is None else f"{row.pytest_seconds:.0f}",
            "-" if row.cpu_seconds is None else f"{row.cpu_seconds:.0f}",
            f"{row.seconds:.0f}",
            "ok" if row.ok else "FAILED",
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = ["", "== version matrix", line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in table]
    out += [f"{row.name}: {row.note}" for row in rows if row.note]
    passed = sum(r.passed for r in rows)
    failed = sum(r.failed for r in rows)
    skipped = sum(r.skipped for r in rows)
    summed = sum(r.seconds for r in rows)
    timing = f"sessions took {summed:.0f} s in all"
    if wall_seconds is not None:
        timing += f"; wall clock {wall_seconds:.0f} s ({wall_seconds / 60:.1f} min)"
    out.append(timing + " (lint's 3 checks count as 3 tests)")
    distinct = set().union(*(row.tests for row in rows if row.name != "lint"))
    out.append(f"{len(distinct)} distinct tests (each counted once, whichever sessions ran it; lint not included)")
    out.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    return out


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    report_path, junit_dir = Path(argv[1]), Path(argv[2])
    wall = float(argv[3]) if len(argv) == 4 else None
    if not report_path.exists():
        print("\n== version matrix\nnox wrote no report: it failed before running any session (see above)")
        print("0 passed, 1 failed")
        return 1
    rows = build_rows(json.loads(report_path.read_text()), junit_dir)
    if not rows:
        print("\n== version matrix\nnox ran no session")
        print("0 passed, 1 failed")
        return 1
    print("\n".join(render(rows, wall)))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
