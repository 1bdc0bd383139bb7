"""Dataset names by OpenLineage's naming conventions, for inputs and stored videos (no OpenLineage import).

``s3://bucket/key`` is namespace ``s3://bucket``, name ``key``; ``gs://`` and other object stores likewise;
a local file is namespace ``file``, name its absolute path; an http(s) URL is namespace ``https://host``,
name its path, with query string, fragment and user info dropped (signed links carry tokens there).
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any, NamedTuple
from urllib.parse import urlsplit

#: Schemes of local files.
LOCAL_SCHEMES = ("", "file", "local")


class DatasetName(NamedTuple):
    """An OpenLineage dataset's ``namespace`` and ``name``."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        """The URI an Airflow asset of this dataset has (``file:///path``, ``s3://bucket/key``)."""
        if self.namespace == "file":
            return f"file://{self.name}"
        return f"{self.namespace.rstrip('/')}/{self.name.lstrip('/')}"


def location_of(value: Any) -> str | None:
    """The URI or path of an input or stored file: a string, a path, an ``ObjectStoragePath``, an ``InputSource``."""
    if value is None:
        return None
    target = getattr(value, "target", None)  # transfer.uploads.InputSource
    if target is not None:
        value = target
    if getattr(value, "protocol", None) is not None and not isinstance(value, str):  # ObjectStoragePath
        return str(value)
    if isinstance(value, (PurePath, os.PathLike)):
        return f"file://{os.path.abspath(os.fspath(value))}"
    return str(value) if str(value) else None


def dataset_name(location: str) -> DatasetName:
    """The OpenLineage namespace and name of a file at ``location`` (a URI or a local path)."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or (len(scheme) == 1 and os.name == "nt"):
        path = parts.path if scheme else location
        return DatasetName("file", os.path.abspath(path))
    host = parts.netloc.rpartition("@")[2]
    if scheme in ("http", "https"):
        return DatasetName(f"{scheme}://{host}", parts.path or "/")
    if not host:
        return DatasetName(scheme, parts.path.lstrip("/"))
    return DatasetName(f"{scheme}://{host}", parts.path.lstrip("/"))


__all__ = ["DatasetName", "dataset_name", "location_of"]
