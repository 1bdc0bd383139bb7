"""docker-compose.yml for users, checked without a Docker engine.

The file is parsed and every service found by its role (the command it runs), not by its name:
Postgres, Redis, api-server, scheduler, dag-processor, triggerer, a Celery worker, and ``runway-sim``
under an opt-in profile. Whatever can be checked against this repository and the installed Airflow
is: the Dockerfile extends the official Airflow 3 image and installs this package from files that
exist, health checks probe endpoints and job types that exist, the runway connection parses, and the
simulator's command is accepted by its own argument parser.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_runway.simulator.cli import build_parser

from .conftest import LOOPBACK_OPENER

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
AIRFLOW_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")
#: ``${VAR:-default}`` and ``${VAR}`` as docker compose interpolates them.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")

pytestmark = pytest.mark.e2e


def interpolate(value: str) -> str:
    """The value as compose renders it with no variables set (defaults applied, ``$$`` unescaped)."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value).replace("$$", "$")


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    assert COMPOSE_FILE.exists(), "docker-compose.yml is missing"
    document = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the x-airflow-common anchors
    return dict(document["services"])


def role_of(service: Mapping[str, Any]) -> str | None:
    image = str(service.get("image", ""))
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    if image.startswith("postgres:"):
        return "postgres"
    if image.startswith("redis:"):
        return "redis"
    if argv[:1] == ["runway-sim"]:
        return "runway-sim"
    if argv[:2] == ["celery", "worker"]:
        return "worker"
    if argv[:1] and argv[0] in AIRFLOW_ROLES:
        return argv[0]
    return None


@pytest.fixture(scope="module")
def by_role(services: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    roles: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, service in services.items():
        role = role_of(service)
        if role is not None:
            assert role not in roles, f"two services run {role}: {roles[role][0]} and {name}"
            roles[role] = (name, service)
    return roles


def test_every_component_is_a_service(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    expected = {"postgres", "redis", *AIRFLOW_ROLES, "runway-sim"}
    assert set(by_role) == expected


@pytest.mark.parametrize("role", ["postgres", "redis", *AIRFLOW_ROLES, "runway-sim"])
def test_each_service_has_a_healthcheck(by_role: dict[str, tuple[str, dict[str, Any]]], role: str) -> None:
    name, service = by_role[role]
    test = as_argv((service.get("healthcheck") or {}).get("test"))
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck command"


def test_airflow_services_build_one_image_with_this_package(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    builds = {role: (by_role[role][1].get("build"), by_role[role][1].get("image")) for role in AIRFLOW_ROLES}
    assert len(set(map(str, builds.values()))) == 1, builds
    build, _ = next(iter(builds.values()))
    assert build, "the Airflow services do not build the image"
    context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    text = dockerfile.read_text()

    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base is not None
    image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), base.group(1))
    assert re.fullmatch(r"apache/airflow:3\.\d+\.\d+(-python3\.\d+)?", image), image

    # The package is copied from files that exist and pip installs it from where it landed, with
    # every file its build needs (pyproject.toml, its readme, the package itself).
    files = copied_into_image(text, context)
    install = re.search(r"^RUN .*\bpip install\b(.*)$", text, re.MULTILINE)
    assert install is not None, "the Dockerfile does not pip install anything"
    targets = [arg.rstrip("/") for arg in shlex.split(install.group(1)) if arg.startswith(("/", "."))]
    assert len(targets) == 1, install.group(0)
    readme = re.search(r'^readme = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert readme is not None
    for needed in ("pyproject.toml", readme.group(1), "airflow_provider_runway"):
        assert files.get(f"{targets[0]}/{needed}") == needed, f"{needed} is not copied to {targets[0]}"


def copied_into_image(dockerfile: str, context: Path) -> dict[str, str]:
    """Image path -> context path of what the Dockerfile's COPY lines bring in (must exist)."""
    files: dict[str, str] = {}
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        *sources, dest = [arg for arg in shlex.split(line) if not arg.startswith("--")]
        for source in sources:
            assert (context / source).exists(), f"COPY source {source} does not exist"
            if source in (".", "./"):
                entries = [p.name for p in context.iterdir()]
                files.update({f"{dest.rstrip('/')}/{name}": name for name in entries})
            elif dest.endswith("/") or len(sources) > 1:
                files[f"{dest.rstrip('/')}/{Path(source).name}"] = source.rstrip("/")
            else:
                files[dest.rstrip("/")] = source.rstrip("/")
    return files


def test_celery_executor_wired_to_redis_and_postgres(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    postgres, redis = by_role["postgres"][0], by_role["redis"][0]
    for role in AIRFLOW_ROLES:
        env = environment(by_role[role][1])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert f"@{postgres}/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert re.match(rf"redis://[^@]*@?{redis}:6379/", env["AIRFLOW__CELERY__BROKER_URL"])
        api_name = by_role["api-server"][0]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://{api_name}:8080/execution/"


def test_runway_connection_defaults_to_the_simulator_service(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    sim_name, sim = by_role["runway-sim"]
    args = build_parser().parse_args(as_argv(sim.get("command")))
    assert args.host == "0.0.0.0"  # reachable from the other containers
    for role in AIRFLOW_ROLES:
        env = environment(by_role[role][1])
        connection = json.loads(env["AIRFLOW_CONN_RUNWAY_DEFAULT"])
        assert connection["conn_type"] == "runway"
        assert connection["host"] == f"http://{sim_name}:{args.port}"
        assert connection["password"], "the simulator needs some API key"
    raw = by_role["worker"][1]["environment"]["AIRFLOW_CONN_RUNWAY_DEFAULT"]
    assert "${RUNWAY_HOST" in raw and "${RUNWAY_API_KEY" in raw, "no way to point the connection at the real API"


def test_simulator_is_an_opt_in_profile(
    services: dict[str, dict[str, Any]], by_role: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    sim_name, sim = by_role["runway-sim"]
    assert sim.get("profiles"), "runway-sim should only start with its profile"
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert sim_name not in depends, f"{name} depends on the optional {sim_name}"


def test_depends_on_points_at_services_that_can_satisfy_it(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target, rule in depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends):
            assert target in services, f"{name} depends on unknown service {target}"
            if rule.get("condition") == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy; it has no check"


def test_dags_folder_is_mounted(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    for role in AIRFLOW_ROLES:
        volumes = [str(v) for v in by_role[role][1].get("volumes", [])]
        dags = [v for v in volumes if v.endswith(":/opt/airflow/dags")]
        assert dags, f"{role} does not mount the DAGs"
        assert (REPO_ROOT / dags[0].split(":")[0]).resolve() == REPO_ROOT / "dags"


def test_scheduler_healthcheck_has_a_server_to_probe(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Airflow serves the scheduler's /health only when the health check server is enabled."""
    _, scheduler = by_role["scheduler"]
    probe = " ".join(as_argv(scheduler["healthcheck"]["test"]))
    env = environment(scheduler)
    if ":8974/health" in probe:
        assert env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "").lower() == "true", (
            "the scheduler healthcheck probes :8974/health but AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK is not true"
        )
    else:
        assert "airflow jobs check --job-type SchedulerJob" in probe, probe


@pytest.mark.parametrize("role", ["dag-processor", "triggerer"])
def test_job_healthchecks_name_real_job_types(by_role: dict[str, tuple[str, dict[str, Any]]], role: str) -> None:
    from airflow.cli.cli_config import ARG_JOB_TYPE_FILTER

    probe = " ".join(as_argv(by_role[role][1]["healthcheck"]["test"]))
    match = re.search(r"airflow jobs check --job-type (\w+)", probe)
    assert match is not None, probe
    assert match.group(1) in ARG_JOB_TYPE_FILTER.kwargs["choices"]


def test_api_server_healthcheck_path_exists_in_airflow() -> None:
    import airflow.api_fastapi

    spec = Path(airflow.api_fastapi.__file__).parent / "core_api" / "openapi" / "v2-rest-api-generated.yaml"
    paths = yaml.safe_load(spec.read_text())["paths"]
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    api = next(s for s in compose.values() if role_of(s) == "api-server")
    probe = " ".join(as_argv(api["healthcheck"]["test"]))
    match = re.search(r"http://localhost:8080(/\S+)", probe)
    assert match is not None, probe
    assert match.group(1) in paths


def test_simulator_healthcheck_answers(by_role: dict[str, tuple[str, dict[str, Any]]], runway_sim: Any) -> None:
    probe = " ".join(as_argv(by_role["runway-sim"][1]["healthcheck"]["test"]))
    match = re.search(r"http://localhost:\d+(/\S+)", probe)
    assert match is not None, probe
    with LOOPBACK_OPENER.open(f"{runway_sim.url}{match.group(1)}", timeout=10) as response:
        assert response.status == 200
