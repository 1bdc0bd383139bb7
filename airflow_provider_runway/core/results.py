"""One normalised result type for a Runway or Aleph task, whatever shape the API sent.

Accepted shapes: Runway ``record-detail`` (``state`` or ``status``; nested ``videoInfo`` or a
flat ``videoUrl``), Aleph ``record-info`` (``successFlag``/``errorCode``/``errorMessage``/
``response``), and both callback bodies. Unknown or missing states are *pending*, never a crash.

Values from a response are checked as inputs are: URLs must be absolute http(s) URLs and ids
task-id strings, else they are dropped; a success whose video URL is dropped is a failure. The
id a caller asked about is kept, whatever id the body names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from airflow_provider_runway.core.errors import is_bad_input_message, is_capacity_message, is_not_extendable_message
from airflow_provider_runway.core.models import QUALITIES, is_http_url, is_task_id


class TaskFamily(str, Enum):
    """Which API a task belongs to; they have different status endpoints and shapes."""

    RUNWAY = "runway"
    ALEPH = "aleph"

    @classmethod
    def coerce(cls, value: str | TaskFamily) -> TaskFamily:
        try:
            return cls(value)
        except ValueError:
            from airflow_provider_runway.core.errors import RunwayParameterError

            raise RunwayParameterError("family", value, "must be one of 'runway', 'aleph'") from None


class TaskStatus(str, Enum):
    """Normalised task status."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


RUNWAY_STATES: dict[str, TaskStatus] = {
    "wait": TaskStatus.PENDING,
    "waiting": TaskStatus.PENDING,
    "queueing": TaskStatus.PENDING,
    "queuing": TaskStatus.PENDING,
    "generating": TaskStatus.RUNNING,
    "success": TaskStatus.SUCCEEDED,
    "fail": TaskStatus.FAILED,
    "failed": TaskStatus.FAILED,
}

#: ``successFlag`` values that mean failure (KIE's Veo and Flux families), with a fallback reason.
ALEPH_FAILURE_FLAGS: dict[str, str] = {
    "2": "The task could not be created (successFlag 2)",
    "3": "The generation failed (successFlag 3)",
}
NO_VIDEO_MESSAGE = "The API reported success but returned no video URL"
BAD_VIDEO_URL_MESSAGE = "The API reported success but its video URL is not an absolute http(s) URL"


@dataclass(frozen=True)
class RunwayTask:
    """A Runway or Aleph task, normalised.

    ``status`` is the normalised status; ``raw_state`` what the API said (``wait``, ``success``,
    ``successFlag=1``...). ``image_url`` is the thumbnail. ``quality`` is the generation's quality
    (``720p``/``1080p``) when the record carries it. ``completed_at`` is when the generation ended
    (Runway's ``generateTime``, Aleph's ``completeTime``); ``created_at`` is only known for Aleph.
    """

    task_id: str
    family: TaskFamily
    status: TaskStatus
    raw_state: str | None = None
    video_url: str | None = None
    image_url: str | None = None
    video_id: str | None = None
    parent_task_id: str | None = None
    fail_code: str | None = None
    fail_message: str | None = None
    expired: bool = False
    created_at: datetime | None = None
    completed_at: datetime | None = None
    quality: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def failed_for_concurrency(self) -> bool:
        """Failed because KIE had no capacity for it (every generation slot of the account busy, or the
        free accounts' "Please try again later ..."); nothing was generated or charged."""
        return self.status is TaskStatus.FAILED and is_capacity_message(self.fail_message)

    @property
    def failed_for_bad_input(self) -> bool:
        """Failed because KIE cannot use an input ("Incorrect image format.", "Unsupported width or height...").

        A new task with the same input fails the same way, so such a failure is not worth a retry.
        """
        return self.status is TaskStatus.FAILED and is_bad_input_message(self.fail_message)

    @property
    def failed_not_extendable(self) -> bool:
        """An extension KIE refused because its source cannot be extended (a 1080p video)."""
        return self.status is TaskStatus.FAILED and is_not_extendable_message(self.fail_message)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the XCom and trigger-event form. ``state`` is the normalised status."""
        return {
            "task_id": self.task_id,
            "family": self.family.value,
            "state": self.status.value,
            "raw_state": self.raw_state,
            "video_url": self.video_url,
            "image_url": self.image_url,
            "video_id": self.video_id,
            "parent_task_id": self.parent_task_id,
            "expired": self.expired,
            "created_at": _iso(self.created_at),
            "completed_at": _iso(self.completed_at),
            "quality": self.quality,
            "fail_code": self.fail_code,
            "fail_message": self.fail_message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunwayTask:
        """Inverse of :meth:`to_dict`."""
        return cls(
            task_id=str(data["task_id"]),
            family=TaskFamily(data.get("family", "runway")),
            status=TaskStatus(data.get("state", "pending")),
            raw_state=data.get("raw_state"),
            video_url=data.get("video_url"),
            image_url=data.get("image_url"),
            video_id=data.get("video_id"),
            parent_task_id=data.get("parent_task_id"),
            fail_code=data.get("fail_code"),
            fail_message=data.get("fail_message"),
            expired=bool(data.get("expired", False)),
            created_at=parse_time(data.get("created_at")),
            completed_at=parse_time(data.get("completed_at")),
            quality=data.get("quality"),
        )

    def as_failed(self, message: str, code: str | None = None) -> RunwayTask:
        return replace(self, status=TaskStatus.FAILED, fail_message=message, fail_code=code or self.fail_code)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        fields = {k: v for k, v in asdict(self).items() if v not in (None, False)}
        return f"RunwayTask({fields})"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_time(value: Any) -> datetime | None:
    """UTC datetime from ``YYYY-MM-DD HH:MM:SS`` (no zone: UTC), ISO 8601, or epoch (s or ms)."""
    if value in (None, "", 0):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return parse_time(int(text))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    """A non-empty string, or ``None`` (KIE uses ``null``, ``""`` and ``0`` for 'nothing')."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if value == 0 else str(int(value) if float(value).is_integer() else value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _url(value: Any) -> str | None:
    """An absolute http(s) URL from a response, or ``None``."""
    text = _text(value)
    return text if is_http_url(text) else None


def _id(value: Any) -> str | None:
    """A task or video id from a response, or ``None`` when it is not a valid id."""
    text = _text(value)
    return text if is_task_id(text) else None


def _parent_id(*values: Any) -> str | None:
    """The first of ``values`` that is a task id; ``0`` and ``"0"`` mean "no parent" as ``""`` does."""
    for value in values:
        found = _id(value)
        if found is not None and found != "0":
            return found
    return None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value) if isinstance(value, (int, float, bool)) else False


def _quality(value: Any) -> str | None:
    """A documented quality (``720p``/``1080p``, any case), or ``None``."""
    text = _text(value)
    text = text.lower() if text else None
    return text if text in QUALITIES else None


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _finish(task: RunwayTask, raw_video_url: str | None = None) -> RunwayTask:
    """A success without a usable video URL is a failure with a clear message."""
    if task.status is TaskStatus.SUCCEEDED and not task.video_url:
        if raw_video_url:
            return task.as_failed(BAD_VIDEO_URL_MESSAGE, code=task.fail_code or "invalid_video_url")
        return task.as_failed(NO_VIDEO_MESSAGE, code=task.fail_code or "no_video_url")
    return task


def parse_runway_record(data: Any, task_id: str | None = None) -> RunwayTask:
    """Normalise a Runway ``record-detail`` ``data`` object (or the seed's flat variant).

    The task's id is ``taskId``, or ``id`` in the shape one of KIE's current examples shows; the
    parent of an extension is ``parentTaskId``, or ``parentId`` (top level or in ``generateParam``),
    where ``0`` or ``""`` means none.

    :param task_id: the id asked about; kept as the task's id. Without it the body's id is used.
    """
    record = _as_mapping(data)
    raw = record.get("state", record.get("status"))
    raw_state = raw.strip().lower() if isinstance(raw, str) else None
    status = RUNWAY_STATES.get(raw_state or "", TaskStatus.PENDING)
    info = _as_mapping(record.get("videoInfo"))
    raw_video_url = _text(info.get("videoUrl")) or _text(record.get("videoUrl"))
    image_url = _url(info.get("imageUrl")) or _url(record.get("imageUrl"))
    fail_message = _text(record.get("failMsg")) or _text(record.get("errorMessage"))
    fail_code = _text(record.get("failCode"))
    if status is TaskStatus.FAILED and not fail_message:
        fail_message = "The task failed without a reason"
    params = _as_mapping(record.get("generateParam"))
    # generateTime is documented as the completion time (zone undocumented: read as UTC); a task that
    # has not finished has not completed, whatever the field holds.
    generate_time = parse_time(record.get("generateTime")) if status.is_terminal else None
    task = RunwayTask(
        task_id=task_id or _id(record.get("taskId")) or _id(info.get("taskId")) or _id(record.get("id")) or "",
        family=TaskFamily.RUNWAY,
        status=status,
        raw_state=raw_state,
        video_url=_url(raw_video_url),
        image_url=image_url,
        video_id=_id(info.get("videoId")) or _id(record.get("videoId")),
        parent_task_id=_parent_id(record.get("parentTaskId"), record.get("parentId"), params.get("parentId")),
        fail_code=fail_code if status is TaskStatus.FAILED else None,
        fail_message=fail_message if status is TaskStatus.FAILED else None,
        expired=_flag(record.get("expireFlag")),
        created_at=parse_time(record.get("createdAt") or record.get("createTime")),
        completed_at=parse_time(record.get("completedAt") or record.get("completeTime")) or generate_time,
        quality=_quality(params.get("quality")) or _quality(record.get("quality") or record.get("resolution")),
    )
    return _finish(task, raw_video_url)


def parse_aleph_record(data: Any, task_id: str | None = None) -> RunwayTask:
    """Normalise an Aleph ``record-info`` ``data`` object.

    In progress: ``successFlag`` 0, ``errorCode`` 0/null, no message. Success: ``successFlag`` 1.
    Failed: ``successFlag`` 0 with a non-zero ``errorCode`` or a non-empty ``errorMessage``, or
    ``successFlag`` 2 (create failed) or 3 (generation failed), as KIE's other families report it.

    :param task_id: the id asked about; kept as the task's id. Without it the body's id is used.
    """
    record = _as_mapping(data)
    response = _as_mapping(record.get("response"))
    success_flag = record.get("successFlag")
    error_code = _text(record.get("errorCode"))
    if error_code is not None and error_code.lstrip("0.") == "":  # "0" as a string is no error, like 0
        error_code = None
    error_message = _text(record.get("errorMessage"))
    raw_video_url = _text(response.get("resultVideoUrl"))
    flag = _text(success_flag)
    if flag is not None and flag in ALEPH_FAILURE_FLAGS:
        status = TaskStatus.FAILED
        error_message = error_message or ALEPH_FAILURE_FLAGS[flag]
    elif _flag(success_flag):
        status = TaskStatus.SUCCEEDED
    elif error_code or error_message:
        status = TaskStatus.FAILED
    elif response:
        status = TaskStatus.RUNNING
    else:
        status = TaskStatus.PENDING
    task = RunwayTask(
        task_id=task_id or _id(record.get("taskId")) or _id(response.get("taskId")) or "",
        family=TaskFamily.ALEPH,
        status=status,
        raw_state=f"successFlag={success_flag}" if success_flag is not None else None,
        video_url=_url(raw_video_url),
        image_url=_url(response.get("resultImageUrl")),
        video_id=_id(response.get("videoId")),
        fail_code=error_code if status is TaskStatus.FAILED else None,
        fail_message=(error_message or "The task failed without a reason") if status is TaskStatus.FAILED else None,
        expired=_flag(record.get("expireFlag")),
        created_at=parse_time(record.get("createTime")),
        completed_at=parse_time(record.get("completeTime")),
    )
    return _finish(task, raw_video_url)


def parse_unfinished(family: TaskFamily, data: Any, task_id: str) -> RunwayTask | None:
    """A status record that plainly says "not finished yet", read without the full normalisation; else None.

    Most reads of a wait return such a record, and nothing but its status matters to the wait
    (a triggerer with thousands of waits pays for every field parsed).
    """
    if not isinstance(data, dict):
        return None
    if family is TaskFamily.RUNWAY:
        raw = data.get("state")
        status = RUNWAY_STATES.get(raw) if isinstance(raw, str) else None
        if status is TaskStatus.PENDING or status is TaskStatus.RUNNING:
            return RunwayTask(task_id=task_id, family=family, status=status, raw_state=raw)
        return None
    flag = data.get("successFlag")
    if flag == 0 and not isinstance(flag, bool) and not data.get("errorCode") and not data.get("errorMessage"):
        response = data.get("response")
        status = TaskStatus.RUNNING if isinstance(response, dict) and response else TaskStatus.PENDING
        return RunwayTask(task_id=task_id, family=family, status=status, raw_state=f"successFlag={flag}")
    return None


def parse_record(family: str | TaskFamily, data: Any, task_id: str | None = None) -> RunwayTask:
    """Normalise a status ``data`` object of either family."""
    if TaskFamily.coerce(family) is TaskFamily.ALEPH:
        return parse_aleph_record(data, task_id)
    return parse_runway_record(data, task_id)


def parse_callback(body: Any) -> RunwayTask:
    """Normalise a callback body of either family.

    Runway: ``{"code", "msg", "data": {"task_id", "video_id", "video_url", "image_url"}}``.
    Aleph: ``{"code", "msg", "data": {"result_video_url", "result_image_url"} | null, "taskId"}``.
    A ``code`` other than 200 is a failure carrying ``msg``.
    """
    payload = _as_mapping(body)
    if not payload:
        raise ValueError("Callback body is not a JSON object")
    data = _as_mapping(payload.get("data"))
    code = payload.get("code")
    ok = code in (200, "200")
    message = _text(payload.get("msg"))
    if "taskId" in payload:
        family = TaskFamily.ALEPH
        raw_task_id = _text(payload.get("taskId"))
        raw_video_url = _text(data.get("result_video_url")) or _text(data.get("resultVideoUrl"))
        image_url = _url(data.get("result_image_url")) or _url(data.get("resultImageUrl"))
        video_id = None
    else:
        family = TaskFamily.RUNWAY
        raw_task_id = _text(data.get("task_id")) or _text(data.get("taskId"))
        raw_video_url = _text(data.get("video_url"))
        image_url = _url(data.get("image_url"))
        video_id = _id(data.get("video_id"))
    if not raw_task_id:
        raise ValueError("Callback body carries no task id")
    task_id = _id(raw_task_id)
    if task_id is None:
        raise ValueError("Callback body carries an invalid task id")
    task = RunwayTask(
        task_id=task_id,
        family=family,
        status=TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED,
        raw_state=f"callback code={code}",
        video_url=_url(raw_video_url),
        image_url=image_url,
        video_id=video_id,
        fail_code=None if ok else _text(code),
        fail_message=None if ok else (message or "The task failed without a reason"),
    )
    return _finish(task, raw_video_url)


#: Keys of an operator's return value once its task finished (see :func:`task_result`).
RESULT_KEYS: tuple[str, ...] = (
    "task_id",
    "family",
    "state",
    "video_url",
    "image_url",
    "video_id",
    "parent_task_id",
    "expired",
    "created_at",
    "completed_at",
    "quality",
    "fail_code",
    "fail_message",
)


def task_result(task: RunwayTask, requested_quality: str | None = None) -> dict[str, Any]:
    """What an operator returns (and pushes as XComs) for a finished task, wherever the task ends.

    KIE's ``record-detail`` omits the quality; a Runway video has the quality its task asked for,
    which an Extend of it needs (KIE cannot extend 1080p), so ``requested_quality`` fills it in.
    """
    result = {key: value for key, value in task.to_dict().items() if key in RESULT_KEYS}
    if result.get("quality") is None and requested_quality in ("720p", "1080p"):
        result["quality"] = requested_quality
    return result
