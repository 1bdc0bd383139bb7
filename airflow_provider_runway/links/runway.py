"""Operator extra link to the result of a Runway task.

KIE has no public page per task, so the link points to the best thing there is: the generated
video once the task succeeded, and before that the task's status endpoint (JSON; it needs the API
key, so it is meant for ``curl`` rather than a browser). The operator pushes that URL to XCom as
soon as the task is created and replaces it with the video URL on success. Only an absolute
http(s) URL becomes a link; anything else (``javascript:``, ``data:``, ``file:``...) gives none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_runway.core.models import is_http_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

#: XCom key of the Runway task id, pushed right after the task is created.
RUNWAY_TASK_ID_XCOM_KEY = "runway_task_id"
#: XCom key of the URL the extra link opens.
RUNWAY_RESULT_URL_XCOM_KEY = "runway_result_url"


class RunwayTaskLink(BaseOperatorLink):
    """Link to the video of a Runway task, or to its status endpoint while it is not finished."""

    name = "Runway Result"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Airflow calls this when the try ends; when no task was created there is nothing to read.
        if getattr(operator, "runway_task_id", "") is None:
            return ""
        url = XCom.get_value(ti_key=ti_key, key=RUNWAY_RESULT_URL_XCOM_KEY)
        return url if is_http_url(url) else ""
