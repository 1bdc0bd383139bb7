"""docker-compose.yml for users, checked without a Docker engine.

The file is parsed and every service found by its role (the command it runs), not by its name:
Postgres, Redis, api-server, scheduler, dag-processor, triggerer, a Celery worker, and ``runway-sim``
under an opt-in profile. Whatever can be checked against this repository and the installed Airflow
is: the Dockerfile extends the official Airflow 3 image and installs this package from files that
exist, health checks probe endpoints and job types that exist, the runway connection parses, and the
simulator's command is accepted by its own argument parser.

Security: ports are published on loopback only, no secret has a known default, and the api-server
started with the compose file's own environment (after the compose file's own ``airflow-init``
script, volumes mapped to temp folders, SQLite instead of Postgres) refuses a task token forged with
the JWT secret the file used to default to.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_runway.simulator.cli import build_parser
from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

from .conftest import BIN_DIR, LOOPBACK_OPENER, ManagedProcess, ProcessRegistry, free_port, wait_until
from .topology import settings as topology_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
AIRFLOW_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")
#: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}`` and ``${VAR?message}``, as
#: docker compose interpolates them, and the ``$$`` escape.
INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
#: The JWT secret docker-compose.yml used to fall back to when AIRFLOW_JWT_SECRET was not set.
OLD_DEFAULT_JWT_SECRET = "change-me-jwt-secret"
#: Audience of the execution API's task tokens (Airflow's ``[execution_api] jwt_audience`` default).
TASK_TOKEN_AUDIENCE = "urn:airflow.apache.org:task"
#: Settings that must never have a value anyone can guess.
SECRET_SETTINGS = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY")

pytestmark = pytest.mark.e2e


class RequiredVariableError(LookupError):
    """A ``${VAR:?message}`` variable is not set: docker compose refuses to start."""


def interpolate(value: str, variables: Mapping[str, str] | None = None) -> str:
    """The value as compose renders it with ``variables`` set (defaults applied, ``$$`` unescaped)."""
    given = variables or {}

    def render(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        value = given.get(name)
        unset = value is None or (operator.startswith(":") and value == "")
        if operator.endswith("?") and unset:
            raise RequiredVariableError(f"{name}: {argument or 'required'}")
        if operator.endswith("-") and unset:
            return argument
        return value or ""

    return INTERPOLATION.sub(render, value)


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def raw_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def environment(service: Mapping[str, Any], variables: Mapping[str, str] | None = None) -> dict[str, str]:
    return {k: interpolate(v, variables) for k, v in raw_environment(service).items()}


def required_variables(services: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Variables the file requires (``${VAR:?...}``): compose will not start until the user sets them."""
    text = yaml.safe_dump(dict(services))
    return {m.group(1) for m in INTERPOLATION.finditer(text) if m.group(2) and m.group(2).endswith("?")}


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


def test_executor_broker_result_backend_and_database_are_the_ones_the_topology_suite_proved(
    by_role: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    """Compose deploys what tests/e2e/topology runs: the executor, and each URL's scheme with its driver."""
    for role in AIRFLOW_ROLES:
        name, service = by_role[role]
        env = environment(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == topology_settings.EXECUTOR, name
        for setting, scheme in topology_settings.URL_SCHEMES.items():
            found = urllib.parse.urlsplit(env[setting]).scheme
            assert found == scheme, f"{name}: {setting} uses {found}://, the topology suite proved {scheme}://"


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


def test_the_simulator_profile_uploads_to_the_simulator(by_role: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """With no variables set, file inputs go to runway-sim, not to KIE's public file host (issue 23)."""
    from airflow_provider_runway.hooks.runway import RunwayHook

    sim_name, sim = by_role["runway-sim"]
    port = build_parser().parse_args(as_argv(sim.get("command"))).port
    for role in AIRFLOW_ROLES:
        connection = json.loads(environment(by_role[role][1])["AIRFLOW_CONN_RUNWAY_DEFAULT"])
        assert connection.get("extra", {}).get("upload_base_url") == f"http://{sim_name}:{port}", role
    raw = by_role["worker"][1]["environment"]["AIRFLOW_CONN_RUNWAY_DEFAULT"]
    assert "${RUNWAY_UPLOAD_BASE_URL" in raw, "no way to point uploads at KIE's file host for the real API"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", environment(by_role["worker"][1])["AIRFLOW_CONN_RUNWAY_DEFAULT"])
        assert RunwayHook().upload_base_url == f"http://{sim_name}:{port}"


def test_simulator_is_an_opt_in_profile(
    services: dict[str, dict[str, Any]], by_role: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    sim_name, sim = by_role["runway-sim"]
    assert sim.get("profiles"), "runway-sim should only start with its profile"
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert sim_name not in depends, f"{name} depends on the optional {sim_name}"


def dependencies(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``depends_on`` as ``{service: rule}``, from either of its two forms (list or mapping)."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, dict):
        return {target: dict(rule or {}) for target, rule in depends.items()}
    return {target: {} for target in depends}


def test_depends_on_points_at_services_that_can_satisfy_it(
    services: dict[str, dict[str, Any]], by_role: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    checked = 0
    for name, service in services.items():
        for target, rule in dependencies(service).items():
            checked += 1
            assert target in services, f"{name} depends on unknown service {target}"
            if rule.get("condition") == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy; it has no check"
    assert checked, "no service has depends_on: nothing orders the start-up"
    # Every Airflow component starts after the database and broker are healthy and the migration is done.
    expected = {
        by_role["postgres"][0]: "service_healthy",
        by_role["redis"][0]: "service_healthy",
        init_service(services)[0]: "service_completed_successfully",
    }
    for role in AIRFLOW_ROLES:
        name, service = by_role[role]
        conditions = {target: rule.get("condition") for target, rule in dependencies(service).items()}
        assert conditions == expected, f"{name} depends on {conditions}, expected {expected}"


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


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the compose file runs Airflow 3; Airflow 2 has no api-server")
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


# -- security: what a deployment from this file hands out ---------------------------------------------


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    """Anyone who reaches the api-server is admin, and the simulator's /_sim/ API has no login."""
    published = {name: [str(port) for port in service.get("ports", [])] for name, service in services.items()}
    assert any(published.values()), "nothing is published: the UI would be unreachable"
    for name, ports in published.items():
        for port in ports:
            host_ip = port.rsplit(":", 2)[0] if port.count(":") == 2 else ""
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} on every interface"


def test_no_secret_setting_has_a_default(
    services: dict[str, dict[str, Any]], by_role: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    """Each secret is required from the user (``${VAR:?}``) or read from a file that airflow-init generates."""
    init_script = " ".join(as_argv(init_service(services)[1].get("command")))
    for role in AIRFLOW_ROLES:
        raw = raw_environment(by_role[role][1])
        for setting in SECRET_SETTINGS:
            if setting in raw:
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", raw[setting]), f"{role}: {setting}={raw[setting]!r}"
                continue
            command = raw.get(f"{setting}_CMD")
            assert command, f"{role} sets neither {setting} (required) nor {setting}_CMD"
            argv = shlex.split(command)
            assert argv[0] == "cat" and len(argv) == 2, command
            assert f"> {argv[1]}" in init_script, f"airflow-init does not generate {argv[1]}"
            assert f"[ -s {argv[1]} ] ||" in init_script, f"airflow-init would replace {argv[1]} on every start"
            volume = volume_holding(by_role[role][1], argv[1])
            assert volume is not None and volume == volume_holding(init_service(services)[1], argv[1]), (
                f"{argv[1]} is not on a volume shared with airflow-init"
            )
    assert OLD_DEFAULT_JWT_SECRET not in COMPOSE_FILE.read_text()


def test_interpolation_is_well_formed(services: dict[str, dict[str, Any]]) -> None:
    """Every ``$`` is an escape (``$$``) or a variable compose understands; nothing else reaches the shell."""
    for name, service in services.items():
        text = yaml.safe_dump(service)
        leftover = INTERPOLATION.sub("", text)
        assert "$" not in leftover, f"{name}: a '$' compose would misread: {leftover[leftover.index('$') :][:60]!r}"
        for match in INTERPOLATION.finditer(text):
            if match.group(2) and match.group(2).endswith("?"):
                assert match.group(3), f"{name}: ${{{match.group(1)}:?}} without a message telling the user what to set"


def init_service(services: Mapping[str, Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    """The one-shot service that migrates the database (and generates the secrets)."""
    [found] = [(n, s) for n, s in services.items() if "airflow db migrate" in " ".join(as_argv(s.get("command")))]
    return found


def volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> volume name (or host path) of a service's short-syntax volumes."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        source, target, *_ = str(entry).split(":")
        mounts[target.rstrip("/")] = source
    return mounts


def volume_holding(service: Mapping[str, Any], path: str) -> str | None:
    for target, source in volume_mounts(service).items():
        if path == target or path.startswith(f"{target}/"):
            return source
    return None


def forged_task_token(secret: str) -> str:
    """A task token as the execution API checks it: audience, iat, nbf, exp; signed HS512 with ``secret``."""
    import jwt

    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "aud": TASK_TOKEN_AUDIENCE, "iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(claims, secret, algorithm="HS512")


def get_status(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with LOOPBACK_OPENER.open(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the compose file runs Airflow 3; Airflow 2 has no api-server")
def test_forged_task_token_cannot_read_the_runway_connection(
    services: dict[str, dict[str, Any]],
    by_role: dict[str, tuple[str, dict[str, Any]]],
    process_registry: ProcessRegistry,
    tmp_path: Path,
) -> None:
    """The api-server as this file configures it, for a user who sets only what the file requires.

    airflow-init's own script runs first (its volumes mapped to temp folders; SQLite, not Postgres).
    A task token signed with the secret the api-server really uses reads the connection (the check
    can fail); one signed with the file's old default secret is refused.
    """
    # What the user must set (``${VAR:?}``) gets a value nobody knows; everything else renders as compose would.
    variables = {name: secrets.token_urlsafe(32) for name in required_variables(services)}
    _, init = init_service(services)
    _, api = by_role["api-server"]
    mapped = {
        target: str(REPO_ROOT / source if source.startswith(".") else tmp_path / "volumes" / source)
        for target, source in {**volume_mounts(api), **volume_mounts(init)}.items()
    }

    def localise(text: str) -> str:
        for target in sorted(mapped, key=len, reverse=True):
            text = text.replace(target, mapped[target])
        return text

    for folder in mapped.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RUNWAY_"))}
    base_env["PATH"] = f"{BIN_DIR}{os.pathsep}{base_env.get('PATH', '')}"
    # The parts of a throwaway deployment that cannot be the containers' own: home, database, executor, address.
    overrides = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }

    def env_of(service: Mapping[str, Any]) -> dict[str, str]:
        rendered = {k: localise(v) for k, v in environment(service, variables).items()}
        return {**base_env, **rendered, **overrides}

    script = localise(interpolate(as_argv(init.get("command"))[-1], variables))
    for attempt in (1, 2):  # a restarted stack runs airflow-init again: it must keep the secrets
        done = subprocess.run(
            ["bash", "-c", script], env=env_of(init), cwd=home, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"airflow-init failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        generated = {p.name: p.read_bytes() for p in Path(tmp_path / "volumes").rglob("*") if p.is_file()}
        if attempt == 1:
            first = generated
    assert generated == first, "airflow-init replaced secrets it had already generated"

    api_env = env_of(api)
    server = process_registry.add(
        ManagedProcess("airflow api-server", [str(BIN_DIR / "airflow"), "api-server"], home / "api.log", api_env, home)
    ).start()
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert server.alive(), f"api-server exited:\n{server.tail()}"
        try:
            with LOOPBACK_OPENER.open(f"{url}/api/v2/version", timeout=5) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    wait_until(answering, 120, "the api-server to answer")
    password = json.loads(api_env["AIRFLOW_CONN_RUNWAY_DEFAULT"])["password"]
    connection_url = f"{url}/execution/connections/runway_default"

    # Control: a token signed with the secret this api-server really uses reads the connection.
    if "AIRFLOW__API_AUTH__JWT_SECRET" in api_env:
        real_secret = api_env["AIRFLOW__API_AUTH__JWT_SECRET"]
    else:
        real_secret = subprocess.run(
            shlex.split(api_env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"]), capture_output=True, text=True, check=True
        ).stdout  # Airflow takes a *_CMD's output as it is
    status, body = get_status(connection_url, forged_task_token(real_secret))
    assert status == 200 and password in body.decode(), (status, body[:300])

    status, body = get_status(connection_url, forged_task_token(OLD_DEFAULT_JWT_SECRET))
    assert status in (401, 403), (status, body[:300])
    assert password not in body.decode()
