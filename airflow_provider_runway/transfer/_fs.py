"""The fsspec filesystem behind an ``ObjectStoragePath``, shared by uploads and downloads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from fsspec import AbstractFileSystem


def filesystem(path: ObjectStoragePath) -> AbstractFileSystem:
    """The filesystem of ``path``; fsspec's own one for a scheme Airflow does not register and no connection names."""
    try:
        return path.fs
    except ValueError:
        # Airflow registers only schemes its providers know (and before 3.2 not even memory://); fall
        # back to fsspec's own implementation when no connection is involved.
        if getattr(path, "conn_id", None) or path.storage_options.get("conn_id"):
            raise
        import fsspec

        return fsspec.filesystem(path.protocol)
