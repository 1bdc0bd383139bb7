"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_runway import __version__
from airflow_provider_runway.hooks.connection_form import provider_connection_form


def get_provider_info() -> dict[str, Any]:
    """Describe this provider's hooks, operators, sensors, triggers, links and connection type."""
    return {
        "package-name": "airflow-provider-runway",
        "name": "Runway (KIE.ai)",
        "description": "Generate videos with KIE.ai's Runway API: Gen-3 text/image-to-video, extend, Aleph.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Runway (KIE.ai)",
                "external-doc-url": "https://docs.kie.ai/runway-api/quickstart",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Runway (KIE.ai)",
                "python-modules": ["airflow_provider_runway.hooks.runway"],
            }
        ],
        "operators": [
            {
                "integration-name": "Runway (KIE.ai)",
                "python-modules": [
                    "airflow_provider_runway.operators.runway",
                    "airflow_provider_runway.operators.download",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Runway (KIE.ai)",
                "python-modules": ["airflow_provider_runway.sensors.runway"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Runway (KIE.ai)",
                "python-modules": ["airflow_provider_runway.triggers.runway"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_runway.hooks.runway.RunwayHook",
                "hook-name": "Runway (KIE.ai)",
                "connection-type": "runway",
                **provider_connection_form(),
            }
        ],
        "extra-links": ["airflow_provider_runway.links.runway.RunwayTaskLink"],
    }
