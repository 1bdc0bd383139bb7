"""Operator that stores a finished Runway task's files in any object store."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_runway.core.errors import RunwayResultExpiredError
from airflow_provider_runway.core.results import RunwayTask
from airflow_provider_runway.transfer.downloads import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_FILE_DEADLINE,
    RunwayDownloadError,
    persist_task_result,
)
from airflow_provider_runway.version_compat import storable_result

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_runway.hooks.runway import RunwayHook


def persist_or_fail(
    task: Mapping[str, Any] | RunwayTask, destination: str | ObjectStoragePath, *, hook: RunwayHook, **options: Any
) -> dict[str, Any]:
    """:func:`~airflow_provider_runway.transfer.downloads.persist_task_result` for task code (same options).

    Failures no retry can fix (expired result, refused id, content type or size) raise
    ``AirflowFailException``; transient ones (5xx, broken or cut-short transfer) propagate so
    Airflow's retries apply, and a retry skips files already stored.
    """
    try:
        return persist_task_result(task, destination, hook=hook, **options)
    except RunwayResultExpiredError as err:
        raise AirflowFailException(err.message) from err
    except RunwayDownloadError as err:
        if err.retryable:
            raise
        raise AirflowFailException(err.message) from err


def coerce_task(value: Any) -> dict[str, Any]:
    """The task dict from an XCom value, a ``RunwayTask``, or its JSON / Python-literal rendering."""
    if isinstance(value, RunwayTask):
        return value.to_dict()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise AirflowFailException(f"task is not a task dict: {text[:120]!r}") from None
    if not isinstance(value, Mapping):
        raise AirflowFailException(f"task must be the task dict of a Runway operator or sensor, got {value!r:.120}")
    return dict(value)


class RunwayDownloadOperator(BaseOperator):
    """
    Store a finished Runway or Aleph task's video, and optionally its thumbnail, in any object store.

    Use it after :class:`~airflow_provider_runway.sensors.runway.RunwayTaskSensor` or an operator run
    without ``download_to``. Files are named ``<task id>.mp4`` and ``<task id>.png`` (the id reduced to
    ``[A-Za-z0-9._-]``); a lapsed link is replaced by a fresh one from the API; a file already present
    with the same size is not downloaded again, so retries are cheap. The API key is only sent to the
    API, never to the file host. Redirects to loopback, private, link-local or reserved addresses are
    refused unless the host is the API's own or listed in the connection extra ``download_allowed_hosts``.

    .. seealso::
        :func:`airflow_provider_runway.transfer.downloads.persist_task_result`

    :param task: The normalised task dict (templated), e.g. ``sensor.output`` or
        ``"{{ ti.xcom_pull(task_ids='wait') }}"``. It must have succeeded and not expired.
    :param destination: Folder to store into (templated): an ``ObjectStoragePath`` or a URL such as
        ``file:///data/videos/{{ ds }}/`` or ``s3://bucket/prefix/``.
    :param runway_conn_id: Connection used to ask for a fresh download link.
    :param include_thumbnail: Also store the thumbnail when the task has one.
    :param max_bytes: Refuse files larger than this many bytes (default 500 MB).
    :param chunk_size: Bytes read and written at a time.
    :param file_deadline: Seconds one file may take, redirects included (default 30 minutes).
    :return: ``{"task_id", "video_path", "video_size", "thumbnail_path", "thumbnail_size"}``, each
        key pushed as its own XCom (``multiple_outputs`` defaults to ``True``).
    """

    template_fields: Sequence[str] = ("task", "destination", "runway_conn_id")
    ui_color = "#d6e9f8"

    def __init__(
        self,
        *,
        task: Any,
        destination: str | ObjectStoragePath,
        runway_conn_id: str = "runway_default",
        include_thumbnail: bool = True,
        max_bytes: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        file_deadline: float = DEFAULT_FILE_DEADLINE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if file_deadline <= 0:
            raise ValueError(f"file_deadline must be positive, got {file_deadline}")
        self.task = task
        self.destination = destination
        self.runway_conn_id = runway_conn_id
        self.include_thumbnail = include_thumbnail
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.file_deadline = file_deadline

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_runway.hooks.runway import RunwayHook

        task = coerce_task(self.task)
        stored = persist_or_fail(
            task,
            self.destination,
            hook=RunwayHook(self.runway_conn_id),
            include_thumbnail=self.include_thumbnail,
            max_bytes=self.max_bytes,
            chunk_size=self.chunk_size,
            file_deadline=self.file_deadline,
        )
        return storable_result({"task_id": task.get("task_id"), **stored}, self.multiple_outputs)
