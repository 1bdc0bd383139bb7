"""The deployment settings the production-topology suite runs with, as ``docker-compose.yml`` must set them.

The suite builds its Airflow environment from these; ``tests/e2e/test_docker_compose.py`` checks that the
compose file deploys the same executor and the same URL schemes (driver names included). Hosts, ports and
credentials differ between the two by design.
"""

from __future__ import annotations

EXECUTOR = "CeleryExecutor"
#: Setting -> URL scheme. Driver names matter: ``postgresql://`` and ``db+postgresql://`` pick whichever
#: driver SQLAlchemy prefers (psycopg 3 for the result backend, which the celery provider does not install).
URL_SCHEMES = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2",
    "AIRFLOW__CELERY__BROKER_URL": "redis",
    "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg2",
}
