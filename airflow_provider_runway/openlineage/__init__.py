"""Lineage of Runway generations: OpenLineage datasets and run facet, and Airflow's hook-lineage collector.

Nothing here imports the OpenLineage provider or client at module import time: :mod:`.facets` does, and it is
imported only from the operators' ``get_openlineage_facets_on_*`` methods, which the OpenLineage listener
calls only where that provider is installed.
"""
