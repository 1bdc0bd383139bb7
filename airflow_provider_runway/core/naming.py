"""File names derived from KIE task ids: one safe stem, shared by result downloads and callback run ids."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")


def safe_file_stem(task_id: str) -> str:
    """The file name stem for ``task_id``: only ``[A-Za-z0-9._-]``, never a path component.

    Characters outside the set and leading dots are dropped, and runs of dots become one. When the
    id changed, a short hash of the original is appended, so two different ids never share a file.

    :raises TypeError: when ``task_id`` is not a string.
    :raises ValueError: when nothing usable is left (empty, ``.``, ``..``, only dots).
    """
    if not isinstance(task_id, str):
        raise TypeError(f"Task id must be a string, got {type(task_id).__name__}")
    stem = _DOTS.sub(".", _UNSAFE.sub("", task_id)).lstrip(".")
    if not stem.strip("."):
        raise ValueError(f"Task id {task_id[:80]!r} cannot be used as a file name")
    if stem != task_id:
        stem = f"{stem[:100]}-{hashlib.sha256(task_id.encode()).hexdigest()[:10]}"
    return stem
