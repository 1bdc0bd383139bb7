"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_runway import __version__


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
                "conn-fields": {
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 10},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "retry_limit": {
                        "label": "Retries of a failed call",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    "retry_delay": {
                        "label": "First retry delay (s)",
                        "schema": {"type": ["number", "null"], "default": 1},
                    },
                    "webhook_secret": {
                        "label": "Webhook secret (HMAC key)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": "Verifies X-Webhook-Signature on callbacks (formerly webhook_hmac_key)",
                    },
                    "max_prompt_length": {
                        "label": "Longest prompt accepted",
                        "schema": {"type": ["integer", "null"], "default": 1800},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {"host": "https://api.kie.ai (empty means this)", "password": "KIE.ai API key"},
                },
            }
        ],
        "extra-links": ["airflow_provider_runway.links.runway.RunwayTaskLink"],
    }
