"""Input uploads against the bundled simulator over loopback: the hook, the limits, and an operator run."""

from __future__ import annotations

import hashlib
import itertools
import json
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath

from airflow_provider_runway.core.wire import RUNWAY_RECORD_DETAIL_PATH
from airflow_provider_runway.hooks.runway import RunwayHook
from airflow_provider_runway.operators.runway import RUNWAY_UPLOADED_INPUTS_XCOM_KEY, RunwayGenerateOperator
from airflow_provider_runway.simulator.media import png_bytes
from airflow_provider_runway.transfer.uploads import MIB, RunwayInputTooLargeError
from tests.integration.conftest import SIM_API_KEY

pytestmark = pytest.mark.integration

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_ids = itertools.count()


def connect(monkeypatch: pytest.MonkeyPatch, sim: Any, **extra: Any) -> RunwayHook:
    """``runway_default`` on the simulator, uploads to the simulator too (it serves KIE's upload host)."""
    conn = {
        "conn_type": "runway",
        "host": sim.url,
        "password": SIM_API_KEY,
        "extra": {"upload_base_url": sim.url, "retry_delay": 0.05, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return RunwayHook()


def big_file(path: Path, head: bytes, size: int) -> Path:
    """``size`` bytes of real (non-sparse) data starting with ``head``, written 1 MiB at a time."""
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    with path.open("wb") as out:
        out.write(head)
        written = len(head)
        while written < size:
            written += out.write(block[: size - written])
    return path


def test_a_50_mb_video_streams_to_the_simulator_with_flat_memory(
    runway_sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = connect(monkeypatch, runway_sim, upload_max_video_mb=60)
    clip = big_file(tmp_path / "clip.mp4", MP4_HEAD, 50 * MIB)
    hook.get_upload_limits()  # the connection is read before measuring
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        url = hook.upload_file(clip, field="video_url")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = peak - before
    print(f"50 MB upload to the simulator: traced peak growth {growth / MIB:.2f} MiB")
    counters = runway_sim.counters()
    assert counters["uploads_total"] == 1 and counters["upload_bytes"] == 50 * MIB
    assert url.startswith(f"{runway_sim.url}/tempfile/") and url.endswith(".mp4")
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=30) as served:
        served.raise_for_status()
        for chunk in served.iter_content(MIB):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert Path(url).stem == digest.hexdigest()  # named from the content hash
    assert growth < 5 * MIB, f"+{growth / MIB:.1f} MiB while uploading 50 MB"


def test_an_oversized_image_is_refused_before_any_request(
    runway_sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = connect(monkeypatch, runway_sim)
    image = tmp_path / "huge.png"
    with image.open("wb") as out:
        out.write(png_bytes())
        out.truncate(11 * MIB)
    with pytest.raises(RunwayInputTooLargeError, match=r"image_url.*11 MB.*10 MB"):
        hook.upload_file(image, field="image_url")
    counters = runway_sim.counters()
    assert counters["requests_total"] == 0 and counters["uploads_total"] == 0


def test_an_operator_with_an_oversized_image_fails_at_once_and_sends_nothing(
    runway_sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_dag: Any, ti_states: Any, failures: Any
) -> None:
    connect(monkeypatch, runway_sim, upload_max_image_mb=1)
    image = tmp_path / "big.png"
    with image.open("wb") as out:
        out.write(png_bytes())
        out.truncate(2 * MIB)
    record, messages = failures
    with DAG(f"upload_too_big_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        RunwayGenerateOperator(
            task_id="animate",
            prompt="The still comes alive",
            image_url=str(image),
            poll_interval=0.05,
            retries=2,
            on_failure_callback=record,
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"animate": ("failed", 1)}  # failed for good: a retry cannot shrink the file
    assert any("image_url" in message and "1 MB" in message for message in messages), messages
    assert runway_sim.counters()["requests_total"] == 0


@pytest.mark.parametrize("form", ["template", "object_storage_path", "file_url"])
def test_generate_from_a_local_image_end_to_end(
    form: str, runway_sim: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_dag: Any, xcom: Any, ti_states: Any
) -> None:
    connect(monkeypatch, runway_sim)
    still = tmp_path / "still.png"
    still.write_bytes(png_bytes())
    dag_args: dict[str, Any] = {"schedule": None, "start_date": datetime(2026, 1, 1), "params": {"still": str(still)}}
    image_url: Any = {
        "template": "{{ params.still }}",
        "object_storage_path": ObjectStoragePath(f"file://{still}"),
        "file_url": f"file://{still}",
    }[form]
    with DAG(f"upload_e2e_{next(_ids)}", **dag_args) as dag:
        RunwayGenerateOperator(
            task_id="animate", prompt="The still comes alive", image_url=image_url, poll_interval=0.05
        )
    dr = run_dag(dag)
    assert ti_states(dr) == {"animate": ("success", 1)}
    uploaded = xcom(dr, "animate", RUNWAY_UPLOADED_INPUTS_XCOM_KEY)
    download_url = uploaded["image_url"]
    assert download_url.startswith(f"{runway_sim.url}/tempfile/")
    assert requests.get(download_url, timeout=10).content == still.read_bytes()
    result = xcom(dr, "animate")
    record = requests.get(
        f"{runway_sim.url}{RUNWAY_RECORD_DETAIL_PATH}",
        params={"taskId": result["task_id"]},
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        timeout=10,
    ).json()["data"]
    assert record["generateParam"]["imageUrl"] == download_url  # the create payload's imageUrl
    counters = runway_sim.counters()
    assert counters["uploads_total"] == 1 and sum(counters["tasks_created"].values()) == 1
