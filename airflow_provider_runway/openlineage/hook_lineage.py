"""Reporting uploads and stored downloads to Airflow's hook-lineage collector, where the running Airflow has one.

As the object-store hooks of the official providers do: the file read is an input asset, the file written an
output asset, with the hook as their context. Lineage is a side channel: it never fails a transfer.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_runway.core.models import redact_url
from airflow_provider_runway.openlineage.naming import dataset_name, location_of

log = logging.getLogger(__name__)


def _asset_uri(value: Any) -> str | None:
    location = location_of(value)
    if not location:
        return None
    if location.startswith(("http://", "https://")):
        return redact_url(location)
    return dataset_name(location).uri


def report_transfer(hook: Any, source: Any, destination: Any) -> None:
    """Tell the hook-lineage collector that ``hook`` copied ``source`` to ``destination`` (paths or URLs)."""
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector
    except ImportError:  # a common-compat provider without hook lineage
        return
    try:
        collector = get_hook_lineage_collector()
        if (uri := _asset_uri(source)) is not None:
            collector.add_input_asset(context=hook, uri=uri)
        if (uri := _asset_uri(destination)) is not None:
            collector.add_output_asset(context=hook, uri=uri)
    except Exception:
        log.debug("Could not report %s -> %s to the hook-lineage collector", source, destination, exc_info=True)


__all__ = ["report_transfer"]
