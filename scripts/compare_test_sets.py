"""Check that the gate's sessions still collect every test: the distinct tests before and after the split.

"Before" is what every version session collected when each ran all of ``tests/unit`` and ``tests/integration``
(and ``tests/e2e`` on the end-to-end versions); "after" is ``tests-airflow-free`` plus every version session with
the paths ``noxfile.py`` gives it now. Both are unions of ``pytest --collect-only`` node ids over the sessions'
virtualenvs under ``.nox`` (run ``bash scripts/test.sh`` once first so they exist). Prints both counts and any
test found on one side only; exits 1 when the sets differ.

Usage (from the tools virtualenv, which has nox): ``.venv-tools/bin/python scripts/compare_test_sets.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import noxfile  # noqa: E402  (after the path: the noxfile is not a package)

#: An object's default ``repr`` in a parametrized test's id (``<object object at 0x7f...>``) differs per run.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def venv_python(session: str) -> Path:
    """The Python of a session's virtualenv (nox names the folder with dashes for dots)."""
    return REPO_ROOT / ".nox" / re.sub(r"[^\w-]", "-", session) / "bin" / "python"


def collect(session: str, args: list[str]) -> set[str]:
    """The node ids pytest collects with ``args`` in one session's virtualenv."""
    argv = [str(venv_python(session)), "-m", "pytest", "--collect-only", "-q", "--continue-on-collection-errors"]
    done = subprocess.run([*argv, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: some module failed to import on this version, as in the gate
        raise RuntimeError(f"{session}: pytest --collect-only exited {done.returncode}:\n{done.stdout[-2000:]}")
    return {_ADDRESS.sub("0x?", line) for line in done.stdout.splitlines() if "::" in line}


def main() -> int:
    before: set[str] = set()
    after = collect(noxfile.AIRFLOW_FREE_SESSION, noxfile.airflow_free_test_files())
    print(f"{noxfile.AIRFLOW_FREE_SESSION}: {len(after)} tests")
    airflow_free_ignores = {f"--ignore={test}" for test in noxfile.airflow_free_test_files()}
    for version in noxfile.AIRFLOW_VERSIONS:
        session = f"tests-{version}"
        paths = noxfile.test_paths(version)
        old = collect(session, [arg for arg in paths if arg not in airflow_free_ignores])
        new = collect(session, paths)
        print(f"{session}: {len(old)} tests before, {len(new)} after")
        before |= old
        after |= new
    print(f"distinct tests: {len(before)} before, {len(after)} after")
    for label, missing in (("only before", before - after), ("only after", after - before)):
        for test in sorted(missing):
            print(f"{label}: {test}")
    return 0 if before == after else 1


if __name__ == "__main__":
    sys.exit(main())
