"""Benchmarks of airflow-provider-runway: see bench/README.md."""
