"""Request models for the three create endpoints, with validation and wire payloads.

Field names are the Python (snake_case) names users pass to the operators; error messages name
those. :meth:`to_payload` produces the camelCase body KIE expects and omits unset optionals.
:meth:`from_payload` reads a wire body back (the simulator validates with it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_runway.core.errors import RunwayParameterError

QUALITIES: tuple[str, ...] = ("720p", "1080p")
RUNWAY_ASPECT_RATIOS: tuple[str, ...] = ("16:9", "4:3", "1:1", "3:4", "9:16")
ALEPH_ASPECT_RATIOS: tuple[str, ...] = (*RUNWAY_ASPECT_RATIOS, "21:9")
DEFAULT_DURATIONS: tuple[int, ...] = (5, 8, 10)
DEFAULT_MAX_PROMPT_LENGTH = 1800
MAX_URL_LENGTH = 2048
MAX_WATER_MARK_LENGTH = 100
MAX_TASK_ID_LENGTH = 128
SEED_RANGE = (0, 4_294_967_295)


@dataclass(frozen=True)
class ValidationLimits:
    """Limits that KIE's documentation is unsure about, so they are configurable.

    :param max_prompt_length: longest accepted prompt (1800 is the most cited figure).
    :param durations: accepted Runway durations in seconds.
    """

    max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH
    durations: tuple[int, ...] = DEFAULT_DURATIONS

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any] | None) -> ValidationLimits:
        """Build limits from a connection's extra (``max_prompt_length``, ``allowed_durations``)."""
        extra = extra or {}
        max_len = extra.get("max_prompt_length", DEFAULT_MAX_PROMPT_LENGTH)
        durations = extra.get("allowed_durations", DEFAULT_DURATIONS)
        if isinstance(durations, str):
            durations = [part for part in durations.replace(" ", "").split(",") if part]
        try:
            durations = tuple(_positive_int(d) for d in durations)
        except (TypeError, ValueError):
            durations = ()
        if not durations:
            raise RunwayParameterError(
                "allowed_durations", extra.get("allowed_durations"), "must be positive integers (seconds), e.g. '5,10'"
            )
        try:
            max_prompt_length = _positive_int(max_len)
        except (TypeError, ValueError):
            raise RunwayParameterError("max_prompt_length", max_len, "must be a positive integer") from None
        return cls(max_prompt_length=max_prompt_length, durations=durations)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


DEFAULT_LIMITS = ValidationLimits()


def _allowed(values: Collection[Any]) -> str:
    return "must be one of " + ", ".join(repr(v) for v in values)


def check_prompt(prompt: Any, limits: ValidationLimits, name: str = "prompt") -> str:
    if not isinstance(prompt, str):
        raise RunwayParameterError(name, prompt, "must be a non-empty string")
    if not prompt.strip():
        raise RunwayParameterError(name, prompt, "must be a non-empty string")
    if len(prompt) > limits.max_prompt_length:
        raise RunwayParameterError(
            name,
            prompt,
            f"must be at most {limits.max_prompt_length} characters (got {len(prompt)})",
        )
    return prompt


#: Whitespace as ``str.isspace`` sees it, and the ASCII control characters.
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def _has_control_or_space(value: str) -> bool:
    # One regex scan: a video URL is checked on every finished task, character by character otherwise.
    return _CONTROL_OR_SPACE.search(value) is not None


def is_http_url(value: Any) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host, at most 2048 characters, no whitespace."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH or _has_control_or_space(value):
        return False
    try:
        parsed = urlsplit(value)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(host)


def redact_url(url: str) -> str:
    """``url`` without query string, fragment and user info: signed links carry tokens there."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_url(value: Any, name: str, *, required: bool = False) -> str | None:
    """An absolute http(s) URL, or ``None`` when optional and unset."""
    if value is None or value == "":
        if required:
            raise RunwayParameterError(name, value, "is required: an absolute http(s) URL")
        return None
    if not isinstance(value, str):
        raise RunwayParameterError(name, value, "must be an absolute http(s) URL string")
    if len(value) > MAX_URL_LENGTH:
        raise RunwayParameterError(name, value, f"must be at most {MAX_URL_LENGTH} characters")
    if not is_http_url(value):
        raise RunwayParameterError(name, value, "must be an absolute http(s) URL, e.g. https://host/path")
    return value


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    if isinstance(value, bool) or value not in choices:
        raise RunwayParameterError(name, value, _allowed(choices))
    return value


def check_duration(value: Any, limits: ValidationLimits, name: str = "duration") -> int:
    if isinstance(value, bool):
        raise RunwayParameterError(name, value, _allowed(limits.durations))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value not in limits.durations:
        raise RunwayParameterError(name, value, f"{_allowed(limits.durations)} (seconds)")
    return value


def check_quality(quality: Any, duration: int | None, name: str = "quality") -> str:
    check_choice(quality, name, QUALITIES)
    if quality == "1080p" and duration is not None and duration != 5:
        raise RunwayParameterError(
            name, quality, f"1080p is only available with duration=5 (got duration={duration}); use 720p"
        )
    return str(quality)


#: Qualities KIE can extend: it refuses "Video generated after 1080P cannot be extended".
EXTENDABLE_QUALITIES: tuple[str, ...] = ("720p",)


def check_extendable(source_quality: Any, name: str = "source_quality") -> str | None:
    """Refuse to extend a source known to be 1080p, before anything is spent; ``None`` means unknown."""
    if source_quality is None:
        return None
    check_choice(source_quality, name, QUALITIES)
    if source_quality not in EXTENDABLE_QUALITIES:
        raise RunwayParameterError(
            name, source_quality, f"{_allowed(EXTENDABLE_QUALITIES)}: KIE cannot extend a video generated at 1080p"
        )
    return str(source_quality)


def check_water_mark(value: Any, name: str = "water_mark") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RunwayParameterError(name, value, "must be a string ('' for no watermark)")
    if len(value) > MAX_WATER_MARK_LENGTH:
        raise RunwayParameterError(name, value, f"must be at most {MAX_WATER_MARK_LENGTH} characters")
    return value


def check_seed(value: Any, name: str = "seed") -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    low, high = SEED_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RunwayParameterError(name, value, f"must be an integer from {low} to {high}, or None")
    return value


def is_task_id(value: Any) -> bool:
    """Whether ``value`` is a task id: a non-empty string of at most 128 characters, no whitespace."""
    return isinstance(value, str) and 0 < len(value) <= MAX_TASK_ID_LENGTH and not _has_control_or_space(value)


def check_task_id(value: Any, name: str = "task_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RunwayParameterError(name, value, "must be a non-empty task id string")
    if not is_task_id(value):
        raise RunwayParameterError(
            name, value, f"must be a task id of at most {MAX_TASK_ID_LENGTH} characters with no whitespace"
        )
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RunwayParameterError(name, value, "must be True or False")
    return value


@dataclass(frozen=True)
class _Request:
    """Shared behaviour of the create requests; their paths live in :mod:`~airflow_provider_runway.core.wire`."""

    def to_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _compact(payload: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in payload.items() if value is not None}


@dataclass(frozen=True)
class GenerateRequest(_Request):
    """Runway Gen-3 text-to-video, or image-to-video when ``image_url`` is set.

    ``resolution`` is accepted as an alias of ``quality`` (the wire field is ``quality``).
    """

    prompt: str
    image_url: str | None = None
    duration: int = 5
    quality: str = "720p"
    aspect_ratio: str | None = "16:9"
    water_mark: str = ""
    callback_url: str | None = None
    seed: int | None = None
    limits: ValidationLimits = field(default=DEFAULT_LIMITS, compare=False, repr=False)

    @classmethod
    def build(cls, *, resolution: str | None = None, **kwargs: Any) -> GenerateRequest:
        """Validate and build; ``resolution`` is a friendly alias of ``quality``."""
        if resolution is not None:
            if "quality" in kwargs and kwargs["quality"] not in (None, resolution):
                raise RunwayParameterError(
                    "resolution", resolution, f"conflicts with quality={kwargs['quality']!r}; pass only one"
                )
            kwargs["quality"] = resolution
        if kwargs.get("quality") is None:
            kwargs.pop("quality", None)
        return cls(**kwargs)

    def __post_init__(self) -> None:
        check_prompt(self.prompt, self.limits)
        check_url(self.image_url, "image_url")
        duration = check_duration(self.duration, self.limits)
        object.__setattr__(self, "duration", duration)
        check_quality(self.quality, duration)
        if self.aspect_ratio is None:
            if self.image_url is None:
                raise RunwayParameterError(
                    "aspect_ratio", None, f"is required for text-to-video; {_allowed(RUNWAY_ASPECT_RATIOS)}"
                )
        else:
            check_choice(self.aspect_ratio, "aspect_ratio", RUNWAY_ASPECT_RATIOS)
        object.__setattr__(self, "water_mark", check_water_mark(self.water_mark))
        check_url(self.callback_url, "callback_url")
        object.__setattr__(self, "seed", check_seed(self.seed))

    def to_payload(self) -> dict[str, Any]:
        return self._compact(
            {
                "prompt": self.prompt,
                "imageUrl": self.image_url,
                "duration": self.duration,
                "quality": self.quality,
                "aspectRatio": self.aspect_ratio,
                "waterMark": self.water_mark,
                "callBackUrl": self.callback_url,
                "seed": self.seed,
            }
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], limits: ValidationLimits = DEFAULT_LIMITS) -> GenerateRequest:
        """Read a wire body (camelCase); ``resolution`` on the wire is refused like any unknown."""
        return cls(
            prompt=payload.get("prompt"),  # type: ignore[arg-type]
            image_url=payload.get("imageUrl") or None,
            duration=payload.get("duration", 5),
            quality=payload.get("quality", "720p"),
            aspect_ratio=payload.get("aspectRatio"),
            water_mark=payload.get("waterMark", ""),
            callback_url=payload.get("callBackUrl") or None,
            seed=payload.get("seed"),
            limits=limits,
        )


@dataclass(frozen=True)
class ExtendRequest(_Request):
    """Continue a finished Runway video (``source_task_id``) with a new prompt.

    ``source_quality`` is the source video's quality when known (e.g. ``RunwayTask.quality``); it is
    not sent, but a 1080p source is refused here because KIE cannot extend it. ``image_url`` and
    ``expand_prompt`` are sent (as ``imageUrl`` and ``expandPrompt``) only when given, as KIE's
    current extend example does.
    """

    source_task_id: str
    prompt: str
    quality: str = "720p"
    water_mark: str = ""
    callback_url: str | None = None
    source_quality: str | None = None
    image_url: str | None = None
    expand_prompt: bool | None = None
    limits: ValidationLimits = field(default=DEFAULT_LIMITS, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_task_id(self.source_task_id, "source_task_id")
        check_extendable(self.source_quality)
        check_prompt(self.prompt, self.limits)
        check_quality(self.quality, None)
        object.__setattr__(self, "water_mark", check_water_mark(self.water_mark))
        check_url(self.callback_url, "callback_url")
        check_url(self.image_url, "image_url")
        if self.expand_prompt is not None:
            check_bool(self.expand_prompt, "expand_prompt")

    def to_payload(self) -> dict[str, Any]:
        return self._compact(
            {
                "taskId": self.source_task_id,
                "prompt": self.prompt,
                "imageUrl": self.image_url,
                "expandPrompt": self.expand_prompt,
                "quality": self.quality,
                "waterMark": self.water_mark,
                "callBackUrl": self.callback_url,
            }
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], limits: ValidationLimits = DEFAULT_LIMITS) -> ExtendRequest:
        return cls(
            source_task_id=payload.get("taskId"),  # type: ignore[arg-type]
            prompt=payload.get("prompt"),  # type: ignore[arg-type]
            quality=payload.get("quality", "720p"),
            water_mark=payload.get("waterMark", ""),
            callback_url=payload.get("callBackUrl") or None,
            image_url=payload.get("imageUrl") or None,
            expand_prompt=payload.get("expandPrompt"),
            limits=limits,
        )


@dataclass(frozen=True)
class AlephRequest(_Request):
    """Runway Aleph video-to-video editing of ``video_url`` (first 5 s are processed)."""

    prompt: str
    video_url: str
    aspect_ratio: str | None = None
    seed: int | None = None
    reference_image: str | None = None
    water_mark: str = ""
    upload_cn: bool = False
    callback_url: str | None = None
    limits: ValidationLimits = field(default=DEFAULT_LIMITS, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_prompt(self.prompt, self.limits)
        check_url(self.video_url, "video_url", required=True)
        if self.aspect_ratio is not None:
            check_choice(self.aspect_ratio, "aspect_ratio", ALEPH_ASPECT_RATIOS)
        object.__setattr__(self, "seed", check_seed(self.seed))
        check_url(self.reference_image, "reference_image")
        object.__setattr__(self, "water_mark", check_water_mark(self.water_mark))
        check_bool(self.upload_cn, "upload_cn")
        check_url(self.callback_url, "callback_url")

    def to_payload(self) -> dict[str, Any]:
        return self._compact(
            {
                "prompt": self.prompt,
                "videoUrl": self.video_url,
                "aspectRatio": self.aspect_ratio,
                "seed": self.seed,
                "referenceImage": self.reference_image,
                "waterMark": self.water_mark,
                "uploadCn": self.upload_cn,
                "callBackUrl": self.callback_url,
            }
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], limits: ValidationLimits = DEFAULT_LIMITS) -> AlephRequest:
        return cls(
            prompt=payload.get("prompt"),  # type: ignore[arg-type]
            video_url=payload.get("videoUrl"),  # type: ignore[arg-type]
            aspect_ratio=payload.get("aspectRatio") or None,
            seed=payload.get("seed"),
            reference_image=payload.get("referenceImage") or None,
            water_mark=payload.get("waterMark", ""),
            upload_cn=payload.get("uploadCn", False),
            callback_url=payload.get("callBackUrl") or None,
            limits=limits,
        )


CreateRequest = GenerateRequest | ExtendRequest | AlephRequest
