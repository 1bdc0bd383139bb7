"""Airflow version flags: the one place the package asks which Airflow it runs on."""

from __future__ import annotations

from typing import Any


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """``(major, minor, micro)`` of the running Airflow, without pre-release or local parts."""
    from airflow import __version__
    from packaging.version import Version

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_0_PLUS: bool = get_base_airflow_version_tuple() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS: bool = get_base_airflow_version_tuple() >= (3, 1, 0)
AIRFLOW_V_3_3_PLUS: bool = get_base_airflow_version_tuple() >= (3, 3, 0)


def storable_result(result: dict[str, Any], multiple_outputs: bool) -> dict[str, Any]:
    """An operator's return value as this Airflow can store it.

    Airflow 3.0's execution API refuses an XCom whose value is None (fixed in 3.1), so there, with
    ``multiple_outputs``, the keys whose value is None are left out; ``op.output["key"]`` of such a
    key still resolves to None.
    """
    if multiple_outputs and AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        return {key: value for key, value in result.items() if value is not None}
    return result


__all__ = ["AIRFLOW_V_3_0_PLUS", "AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_3_PLUS", "storable_result"]
