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


@pytest.mark.parametrize("name", ["example_runway_persist", "example_runway_nightly_batch"])
def test_output_dir_is_fixed_by_the_deployment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    param = load_dag(name, monkeypatch).params.get_param("output_dir")
    assert param.resolve("file:///srv/runway/") == "file:///srv/runway/"
    for elsewhere in ("s3://someone-elses-bucket/", "file:///etc/cron.d/", "http://169.254.169.254/"):
        with pytest.raises(Exception) as err:  # ParamValidationError, from airflow.sdk or airflow.exceptions
            param.resolve(elsewhere)
        assert type(err.value).__name__ == "ParamValidationError"
