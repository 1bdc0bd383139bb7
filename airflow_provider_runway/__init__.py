"""Apache Airflow provider for KIE.ai's Runway video API."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
