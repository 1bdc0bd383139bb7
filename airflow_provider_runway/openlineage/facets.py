"""OpenLineage datasets and the Runway run facet of one generation.

Imported only from the operators' ``get_openlineage_facets_on_*`` methods: it needs the OpenLineage provider
(the ``openlineage`` extra), which the OpenLineage listener that calls those methods implies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage
from attr import define

from airflow_provider_runway.openlineage.naming import dataset_name

#: The key of :class:`RunwayRunFacet` among a run's facets.
RUNWAY_RUN_FACET = "runway"


@define
class RunwayRunFacet(RunFacet):
    """
    The Runway generation behind an Airflow task's run: which KIE task, of what kind, and what it cost.

    :param runwayTaskId: KIE's task id of the generation.
    :param family: ``runway`` (generate and extend) or ``aleph``.
    :param model: The model KIE ran (``runway-gen4-turbo`` for generate and extend, ``runway-aleph``).
    :param duration: Seconds of video, when known.
    :param quality: ``720p`` or ``1080p``, when known.
    :param credits: Credits the generation cost by the price table, ``None`` when the price is unknown.
    :param charged: Whether KIE deducted the credits (not for a task failed for the concurrency limit).
    :param state: The task's final state (``succeeded`` or ``failed``).
    """

    runwayTaskId: str
    family: str
    model: str
    duration: int | None = None
    quality: str | None = None
    credits: float | None = None
    charged: bool = True
    state: str | None = None

    @staticmethod
    def _get_schema() -> str:
        # A run facet with its own properties, which the base RunFacet schema allows (additionalProperties).
        return "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"


def datasets(locations: Iterable[str]) -> list[Dataset]:
    """One dataset per location (a URI or a local path), named by OpenLineage's conventions, without repeats."""
    seen: dict[tuple[str, str], Dataset] = {}
    for location in locations:
        name = dataset_name(location)
        seen.setdefault((name.namespace, name.name), Dataset(namespace=name.namespace, name=name.name))
    return list(seen.values())


def operator_lineage(
    inputs: Iterable[str], outputs: Iterable[str], facet: dict[str, Any] | None
) -> OperatorLineage[Dataset, RunFacet]:
    """The lineage of one generation: its input files, its video, and the Runway facet (when a task exists)."""
    run_facets: dict[str, RunFacet] = {RUNWAY_RUN_FACET: RunwayRunFacet(**facet)} if facet else {}
    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs), run_facets=run_facets)


__all__ = ["RUNWAY_RUN_FACET", "RunwayRunFacet", "datasets", "operator_lineage"]
