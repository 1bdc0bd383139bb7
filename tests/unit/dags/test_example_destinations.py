"""The example DAGs store results only where the deployment says, whatever a run's conf asks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[3] / "dags"


def load_dag(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RUNWAY_OUTPUT_DIR", "file:///srv/runway/")
    spec = importlib.util.spec_from_file_location(f"example_{name}", DAGS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.mark.parametrize(
    "name", ["example_runway_persist", "example_runway_nightly_batch", "example_runway_image_from_file"]
)
def test_output_dir_is_fixed_by_the_deployment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    param = load_dag(name, monkeypatch).params.get_param("output_dir")
    assert param.resolve("file:///srv/runway/") == "file:///srv/runway/"
    for elsewhere in ("s3://someone-elses-bucket/", "file:///etc/cron.d/", "http://169.254.169.254/"):
        with pytest.raises(Exception) as err:  # ParamValidationError, from airflow.sdk or airflow.exceptions
            param.resolve(elsewhere)
        assert type(err.value).__name__ == "ParamValidationError"


def test_the_input_file_is_fixed_by_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's conf cannot make the worker upload a file of its choosing to KIE's public file host."""
    param = load_dag("example_runway_image_from_file", monkeypatch).params.get_param("image")
    still = DAGS / "assets" / "sunset_still.png"
    assert param.resolve(str(still)) == str(still)
    assert 0 < still.stat().st_size < 50 * 1024 and still.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    for elsewhere in ("/etc/passwd", "s3://someone-elses-bucket/secret.png", "file:///root/.ssh/id_rsa"):
        with pytest.raises(Exception) as err:
            param.resolve(elsewhere)
        assert type(err.value).__name__ == "ParamValidationError"
