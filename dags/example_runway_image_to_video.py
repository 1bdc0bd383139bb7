"""Image-to-video with Runway Gen-3: animate a still image.

Setting ``image_url`` turns ``RunwayGenerateOperator`` into image-to-video (``aspect_ratio`` may then
be left out: the image decides). To stay self-contained, this DAG first makes a short text-to-video
clip and animates its thumbnail, passed downstream as the XComArg ``XComArg(still, key="image_url")``.
With your own image, set ``image_url`` to any public http(s) URL of at most 10 MB, or use the
``image_url`` param and a template such as ``"{{ params.image_url }}"``.

Runs unchanged against the bundled simulator or the real API through the ``runway_default``
connection (see ``example_runway_text_to_video``). ``RUNWAY_POLL_INTERVAL`` sets the poll interval.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_runway.operators.runway import RunwayGenerateOperator

POLL_INTERVAL = float(os.environ.get("RUNWAY_POLL_INTERVAL", "5"))

with DAG(
    dag_id="example_runway_image_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "runway"],
) as dag:
    still = RunwayGenerateOperator(
        task_id="make_still",
        prompt="A paper boat resting on a calm pond, overhead shot, soft light",
        aspect_ratio="1:1",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    animate = RunwayGenerateOperator(
        task_id="animate_image",
        prompt="The paper boat drifts slowly as raindrops ripple the water",
        image_url=XComArg(still, key="image_url"),
        aspect_ratio=None,
        duration=5,
        quality="1080p",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
