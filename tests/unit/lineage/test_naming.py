"""Dataset names of inputs and stored videos follow OpenLineage's naming conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_runway.openlineage.naming import DatasetName, dataset_name, location_of


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://bucket/videos/t-1.mp4", DatasetName("s3://bucket", "videos/t-1.mp4")),
        ("gs://bucket/in/still.png", DatasetName("gs://bucket", "in/still.png")),
        ("file:///data/in/still.png", DatasetName("file", "/data/in/still.png")),
        ("/data/in/still.png", DatasetName("file", "/data/in/still.png")),
        ("https://user:pw@cdn.example/k/v.mp4?token=secret#x", DatasetName("https://cdn.example", "/k/v.mp4")),
        ("memory:///bucket/v.mp4", DatasetName("memory", "bucket/v.mp4")),
    ],
)
def test_dataset_names(location: str, expected: DatasetName) -> None:
    assert dataset_name(location) == expected


def test_no_query_string_or_user_info_survives() -> None:
    name = dataset_name("https://user:pw@cdn.example/v.mp4?X-Amz-Signature=abc")
    assert "abc" not in name.namespace + name.name and "pw" not in name.namespace


def test_locations_of_paths_object_storage_and_strings(tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    assert location_of(still) == f"file://{still}"
    assert location_of(ObjectStoragePath(f"file://{still}")) == f"file://{still}"
    assert location_of(ObjectStoragePath("s3://bucket/in/still.png")) == "s3://bucket/in/still.png"
    assert location_of("https://cdn.example/a.png") == "https://cdn.example/a.png"
    assert location_of(None) is None


def test_asset_uris_round_trip() -> None:
    assert dataset_name("file:///data/v.mp4").uri == "file:///data/v.mp4"
    assert dataset_name("s3://bucket/videos/v.mp4").uri == "s3://bucket/videos/v.mp4"
