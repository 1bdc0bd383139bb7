"""Without the OpenLineage provider nothing changes and nothing of it is imported; with it, the facets build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# A fresh interpreter imports every module a task uses and runs the worker-side reporting; with "block", any
# import of the OpenLineage provider or client raises, as where the extra is not installed.
PROBE = """
import importlib.abc, sys
import airflow  # Airflow's own provider discovery reads every installed provider's metadata first
BLOCKED = ("openlineage", "airflow.providers.openlineage", "airflow_provider_runway.openlineage.facets")

def lineage_modules():
    return {m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED)}

class NoOpenLineage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"not installed here: {name}")
        return None

before = lineage_modules()
if sys.argv[1] == "block":
    sys.meta_path.insert(0, NoOpenLineage())
import airflow_provider_runway.operators.runway as runway
import airflow_provider_runway.triggers.runway
import airflow_provider_runway.transfer.downloads
from airflow_provider_runway.core.pricing import usage_of
from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
from airflow_provider_runway.operators._lineage import input_locations, outlet_extra

task = RunwayTask("t-1", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url="https://cdn.example/v.mp4?sig=1")
extra = outlet_extra(task, usage_of(task, duration=5, quality="720p"), {"video_path": "file:///v/t-1.mp4"})
assert extra["video_url"] == "https://cdn.example/v.mp4", extra
op = runway.RunwayGenerateOperator(task_id="gen", prompt="p", image_url="file:///in/still.png")
assert input_locations(op) == ["file:///in/still.png"]
loaded = sorted(lineage_modules() - before)
print("openlineage modules:", loaded)
sys.exit(1 if loaded else 0)
"""


def probe(mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )


@pytest.mark.parametrize("mode", ["block", "installed"])
def test_tasks_import_and_report_nothing_of_openlineage(mode: str, tmp_path: Path) -> None:
    """Blocked: the extra is not installed and nothing fails; installed: a task's modules still import none of it.

    (Airflow itself reads every installed provider's metadata at start, before the probe looks.)
    """
    result = probe(mode, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "openlineage modules: []" in result.stdout


def test_the_facets_name_inputs_the_video_and_the_runway_task() -> None:
    pytest.importorskip("airflow.providers.openlineage", reason="needs the openlineage extra")
    from airflow_provider_runway.core.pricing import usage_of
    from airflow_provider_runway.core.results import RunwayTask, TaskFamily, TaskStatus
    from airflow_provider_runway.openlineage.facets import RunwayRunFacet
    from airflow_provider_runway.operators._lineage import RunOutcome
    from airflow_provider_runway.operators.runway import RunwayGenerateOperator

    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url="s3://in/stills/a.png?v=2", quality="1080p")
    done = RunwayTask("t-9", TaskFamily.RUNWAY, TaskStatus.SUCCEEDED, video_url="https://cdn.example/t-9.mp4?s=x")
    usage = usage_of(done, duration=5, quality="1080p")
    op._try.outcome = RunOutcome(done, usage, {"video_path": "s3://out/videos/t-9.mp4"})
    lineage: Any = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("s3://in", "stills/a.png")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://out", "videos/t-9.mp4")]
    facet = lineage.run_facets["runway"]
    assert isinstance(facet, RunwayRunFacet)
    assert (facet.runwayTaskId, facet.credits, facet.quality, facet.model) == ("t-9", 70, "1080p", "runway-gen4-turbo")

    op._try.outcome = RunOutcome(done, usage, {"video_path": None})  # not stored: KIE's URL, without its query
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("https://cdn.example", "/t-9.mp4")]


def test_a_failure_before_any_task_has_inputs_and_no_runway_facet() -> None:
    pytest.importorskip("airflow.providers.openlineage", reason="needs the openlineage extra")
    from airflow_provider_runway.operators.runway import RunwayGenerateOperator

    op = RunwayGenerateOperator(task_id="gen", prompt="p", image_url="https://cdn.example/a.png")
    lineage: Any = op.get_openlineage_facets_on_failure(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("https://cdn.example", "/a.png")]
    assert lineage.outputs == [] and lineage.run_facets == {}
