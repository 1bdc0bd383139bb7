"""The gate's summary table (``scripts/matrix_summary.py``) from nox's report and JUnit XML files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "matrix_summary.py"


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("matrix_summary", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_junit(path: Path, cases: list[tuple[str, str, str]]) -> None:
    """A JUnit XML file with ``(classname, name, outcome)`` cases; outcome is passed, failure or skipped."""
    suite = ElementTree.SubElement(ElementTree.Element("testsuites"), "testsuite")
    for classname, name, outcome in cases:
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name=name)
        if outcome != "passed":
            ElementTree.SubElement(case, outcome)
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def run(summary: ModuleType, tmp_path: Path, sessions: dict[str, list[tuple[str, str, str]]]) -> int:
    """``matrix_summary.main`` on a nox report of ``sessions``, all successful, with their JUnit XML files."""
    report = {"sessions": [{"name": name, "result": "success", "duration": 10} for name in sessions]}
    (tmp_path / "nox.json").write_text(json.dumps(report))
    for name, cases in sessions.items():
        write_junit(tmp_path / f"{name}.xml", cases)
    return summary.main(["matrix_summary.py", str(tmp_path / "nox.json"), str(tmp_path), "100"])


def test_the_airflow_free_row_follows_lint_and_a_test_on_every_version_counts_once(
    summary: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    on_airflow = [
        ("tests.unit.hooks.test_hook", "test_a", "passed"),
        ("tests.unit.hooks.test_hook", "test_b", "skipped"),
    ]
    status = run(
        summary,
        tmp_path,
        {
            "tests-3.3.2": on_airflow,
            "tests-airflow-free": [("tests.unit.core.test_x", "test_c[<object object at 0x7f01>]", "passed")],
            "tests-2.11.2": on_airflow,
            "lint": [("lint", "ruff check", "passed")],
        },
    )
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    rows = [line.split()[0] for line in lines if line.split() and line.split()[-1] in ("ok", "FAILED")]
    assert rows == ["lint", "airflow-free", "2.11.2", "3.3.2"]
    assert "3 distinct tests (each counted once, whichever sessions ran it; lint not included)" in lines
    assert lines[-1] == "4 passed, 0 failed, 2 skipped"


def test_an_object_address_in_a_test_id_does_not_make_it_two_tests(summary: ModuleType, tmp_path: Path) -> None:
    write_junit(tmp_path / "a.xml", [("m", "test[<object object at 0x7f01>]", "passed")])
    write_junit(tmp_path / "b.xml", [("m", "test[<object object at 0x7e99>]", "failure")])
    assert summary.count_junit(tmp_path / "a.xml")[3] == summary.count_junit(tmp_path / "b.xml")[3]
    assert summary.count_junit(tmp_path / "b.xml")[:3] == (0, 1, 0)


def test_a_failed_test_fails_the_summary(
    summary: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(summary, tmp_path, {"tests-airflow-free": [("m", "test_a", "failure")]})
    assert status == 1
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 1 failed, 0 skipped"
