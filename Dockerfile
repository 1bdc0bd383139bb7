# Airflow 3 image with this provider installed; used by docker-compose.yml.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2
FROM ${AIRFLOW_IMAGE}
COPY --chown=airflow:root pyproject.toml README.md /opt/provider/
COPY --chown=airflow:root airflow_provider_runway /opt/provider/airflow_provider_runway
RUN pip install --no-cache-dir /opt/provider
# Mount point of the airflow-secrets volume: owned by the airflow user, so a new volume starts with
# this owner and mode and airflow-init can write the generated secrets into it.
RUN mkdir -p /opt/airflow/secrets && chmod 0700 /opt/airflow/secrets
