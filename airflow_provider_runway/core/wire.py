"""Where the KIE Runway API lives: base URL, paths and the status endpoint of each family."""

from __future__ import annotations

from airflow_provider_runway.core.results import TaskFamily

DEFAULT_BASE_URL = "https://api.kie.ai"

RUNWAY_GENERATE_PATH = "/api/v1/runway/generate"
RUNWAY_EXTEND_PATH = "/api/v1/runway/extend"
RUNWAY_RECORD_DETAIL_PATH = "/api/v1/runway/record-detail"
ALEPH_GENERATE_PATH = "/api/v1/aleph/generate"
ALEPH_RECORD_INFO_PATH = "/api/v1/aleph/record-info"
CREDIT_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"

#: Lifetime of a direct link from ``download-url``; KIE keeps the files themselves 14 days.
DOWNLOAD_LINK_TTL_SECONDS = 20 * 60

STATUS_PATHS: dict[TaskFamily, str] = {
    TaskFamily.RUNWAY: RUNWAY_RECORD_DETAIL_PATH,
    TaskFamily.ALEPH: ALEPH_RECORD_INFO_PATH,
}


def status_path(family: str | TaskFamily) -> str:
    """The status endpoint for a task of ``family``."""
    return STATUS_PATHS[TaskFamily.coerce(family)]


def created_task_id(data: object) -> str | None:
    """The ``taskId`` of a create response's ``data``, or ``None`` when absent."""
    if isinstance(data, dict):
        task_id = data.get("taskId")
        if isinstance(task_id, str) and task_id.strip():
            return task_id
    return None
