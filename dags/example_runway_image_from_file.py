"""Image-to-video from a file: animate a still kept next to the DAG, then store the video.

KIE takes only public URLs for its inputs. ``image_url`` (like ``video_url`` and ``reference_image``
of the Aleph operator) also takes a local path, an ``ObjectStoragePath`` or a URL such as
``s3://bucket/stills/sunset.png``, ``gs://...`` or ``file:///...``: before creating the task, the
operator checks the file against KIE's size limit, streams it to KIE's File Upload API (the
connection extra ``upload_base_url``, ``https://kieai.redpandaai.co`` by default; the simulator
serves it too) and passes the returned ``downloadUrl``. Uploaded files are named from their
content's hash, so a retried task overwrites its upload; KIE deletes them after 3 days. The
``downloadUrl`` is also pushed as the XCom ``runway_uploaded_inputs``.

The still is ``assets/sunset_still.png`` beside this file; ``RUNWAY_INPUT_IMAGE`` points the DAG at
another file or object-storage URL instead. The video and thumbnail are stored under ``output_dir``
(``RUNWAY_OUTPUT_DIR``, as in ``example_runway_persist``). Runs unchanged against the bundled
simulator (set ``upload_base_url`` to the simulator's URL, as for ``host``) or the real API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

INPUT_IMAGE = os.environ.get("RUNWAY_INPUT_IMAGE", str(Path(__file__).resolve().parent / "assets" / "sunset_still.png"))
DEFAULT_OUTPUT_DIR = os.environ.get("RUNWAY_OUTPUT_DIR", "file:///tmp/runway-videos/")

with DAG(
    dag_id="example_runway_image_from_file",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "prompt": Param("The sun sinks into the sea, gentle waves, slow camera push-in", type="string"),
        # One allowed value each: a run's conf must not read or write files of its choosing.
        "image": Param(INPUT_IMAGE, type="string", enum=[INPUT_IMAGE]),
        "output_dir": Param(DEFAULT_OUTPUT_DIR, type="string", enum=[DEFAULT_OUTPUT_DIR]),
    },
    tags=["example", "runway"],
) as dag:
    animate = RunwayGenerateOperator(
        task_id="animate_file",
        prompt="{{ params.prompt }}",
        image_url="{{ params.image }}",
        duration=5,
        quality="720p",
        poll_interval=float(os.environ.get("RUNWAY_POLL_INTERVAL", "5")),
        download_to="{{ params.output_dir }}{{ ds_nodash }}/",
    )

    @task
    def report(result: dict[str, Any]) -> str:
        """Print the run's result and where the video was stored."""
        print("Runway result:\n" + json.dumps(result, indent=2, sort_keys=True))
        return str(result["video_path"])

    # `output` is an XComArg resolved at run time to the operator's return value.
    report(cast("dict[str, Any]", animate.output))
