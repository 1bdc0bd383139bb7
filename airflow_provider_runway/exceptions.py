"""Airflow-side exceptions of the provider (the API's own errors are in :mod:`airflow_provider_runway.core.errors`)."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException


class RunwayWaitError(AirflowException):
    """Waiting for a Runway task failed, and an Airflow retry may help.

    Its status could not be read, or the generation failed and ``retry_remote_failures`` allows a
    new task.
    """
