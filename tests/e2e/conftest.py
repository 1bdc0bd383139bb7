"""Real Airflow processes on loopback for the end-to-end tests.

:func:`airflow_stack` runs ``airflow db migrate`` in a throwaway ``AIRFLOW_HOME`` on SQLite, then starts the
installed Airflow's processes, each in its own process group with its log in the temp dir: on Airflow 3 the
api-server, scheduler (LocalExecutor), dag-processor and triggerer; on Airflow 2.11 the webserver, scheduler
(SequentialExecutor, with DAG parsing inside) and triggerer. The ``process_registry`` fixture tears every
started process down at the end, even on failure, checks none survived, and prints the tail of each log when
the test failed.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from airflow_provider_runway.version_compat import AIRFLOW_V_3_0_PLUS

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
LOG_TAIL_LINES = 60
#: A request logged by the api-server (Airflow 3) or the webserver's gunicorn (Airflow 2).
ACCESS_LOG_LINE = re.compile(r'\[http\.access\]|"(GET|POST|PATCH|PUT|DELETE) /[^"]* HTTP/1\.[01]" \d{3} ')
LOCAL_WORKER_TITLE_PREFIX = "airflow worker -- LocalExecutor:"
LOCAL_IDLE_WORKER_TITLE = f"{LOCAL_WORKER_TITLE_PREFIX} <idle>"
#: The SequentialExecutor's command line for a task, and the title of the task runner it forks (Airflow 2).
SEQUENTIAL_TASK_COMMAND = "airflow tasks run "
TASK_RUNNER_TITLE_PREFIX = "airflow task runner:"
#: A scheduler heartbeat younger than this means its loop is not stuck running a task (heartbeat every 1 s).
SCHEDULER_LOOP_FRESH_SECONDS = 10.0


#: Loopback only: never route these requests through a proxy from the environment.
LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ManagedProcess:
    """A child process in its own process group, with stdout and stderr in one log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str]
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` arguments of this kind of process (none here)."""
        return {}

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,  # own process group: teardown reaches every child
                **self.popen_kwargs(),
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill_hard(self) -> None:
        """SIGKILL the whole process group, as a crashed host would lose it, and reap the leader."""
        self.signal_group(signal.SIGKILL)
        assert self.popen is not None
        self.popen.wait(timeout=30)

    def terminate(self) -> None:
        """Ask the process group to stop (SIGTERM); :meth:`stop` finishes the job."""
        if self.popen is not None and self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
        if self.popen is None:
            return
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        # Children may outlive a leader that exited on SIGTERM.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the live processes of this group and the children they reaped."""
        total = 0.0
        for pid in self.group_members():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def group_members(self) -> list[int]:
        """Live (non-zombie) processes still in this process group."""
        members = []
        for proc in psutil.process_iter(["pid", "status"]):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if os.getpgid(proc.pid) == self.pid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    members.append(proc.pid)
        return members

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return "(no log)"
        # The api-server and webserver log every request; those lines would push the informative ones out.
        text = [line for line in self.read_log().splitlines() if not ACCESS_LOG_LINE.search(line)]
        return "\n".join(text[-lines:])

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class ProcessRegistry:
    """Every process a test started, so teardown and failure diagnostics reach all of them."""

    processes: list[ManagedProcess] = field(default_factory=list)

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop every process: SIGTERM to all groups at once, then each gets what is left of ``grace``."""
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in reversed(self.processes):
            process.stop(grace=max(deadline - time.monotonic(), 0.1))

    def listening_sockets(self) -> dict[str, list[str]]:
        """``ip:port`` of every TCP socket a live process of each group listens on."""
        owner = {pid: p.name for p in self.processes if p.alive() for pid in p.group_members()}
        sockets: dict[str, list[str]] = {}
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in owner:
                sockets.setdefault(owner[conn.pid], []).append(f"{conn.laddr.ip}:{conn.laddr.port}")
        return sockets

    def assert_loopback_only(self) -> dict[str, list[str]]:
        """No started process listens beyond loopback (no log server, no API on every interface)."""
        sockets = self.listening_sockets()
        beyond = {
            name: addresses
            for name, addresses in sockets.items()
            if any(not ipaddress.ip_address(address.rsplit(":", 1)[0]).is_loopback for address in addresses)
        }
        assert sockets, "no listening socket found: the check would prove nothing"
        assert beyond == {}, f"listening beyond loopback: {beyond}"
        return sockets

    def leftovers(self) -> dict[str, list[int]]:
        """Processes that survived :meth:`stop_all`, by the name of the group they were started in."""
        return {p.name: members for p in self.processes if p.popen is not None and (members := p.group_members())}

    def dump_logs(self) -> None:
        for process in self.processes:
            print(f"\n===== {process.name} (pid {process.popen.pid if process.popen else '-'}) {process.log_path}")
            print(process.tail())


@dataclass
class RunwaySimProcess:
    """A ``runway-sim`` subprocess on loopback."""

    process: ManagedProcess
    url: str

    def client(self) -> Any:
        from airflow_provider_runway.simulator.client import SimulatorClient

        return SimulatorClient(self.url)


def start_runway_sim(registry: ProcessRegistry, tmp: Path, extra_args: list[str]) -> RunwaySimProcess:
    """Start ``runway-sim --host 127.0.0.1 --port 0 <extra_args>`` and read its URL from what it prints."""
    log_path = tmp / "runway-sim.log"
    argv = [str(BIN_DIR / "runway-sim"), "--host", "127.0.0.1", "--port", "0", *extra_args]
    process = registry.add(ManagedProcess("runway-sim", argv, log_path, dict(os.environ), tmp).start())

    def listening() -> str | None:
        assert process.alive(), f"runway-sim exited:\n{process.tail()}"
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", process.read_log())
        return match.group(1) if match else None

    url = str(wait_until(listening, 30, "runway-sim to listen", interval=0.1))
    return RunwaySimProcess(process, url)


class AirflowStack:
    """Airflow on loopback in one throwaway ``AIRFLOW_HOME`` on SQLite; the version-specific parts are below.

    :meth:`airflow_stack` picks :class:`Airflow3Stack` or :class:`Airflow2Stack` for the installed Airflow.
    """

    #: The processes :meth:`start` runs, in order.
    components_to_start: tuple[str, ...] = ()
    #: Extra arguments per component (log servers off: they would listen on every interface).
    component_args: Mapping[str, list[str]] = {}
    executor: str = ""
    #: How many tasks the executor runs at once (its worker slots).
    executor_parallelism: int = 0
    #: Where the stable REST API lives.
    api_prefix: str = ""
    #: The parts of the health endpoint that must report ``healthy``.
    health_parts: tuple[str, ...] = ()
    #: Seconds between two observations of a run (each costs the REST API two requests).
    observe_interval: float = 0.5

    def __init__(self, registry: ProcessRegistry, home: Path, dags_folder: Path, extra_env: Mapping[str, str]) -> None:
        self.registry = registry
        self.home = home
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = self._environment(dags_folder, extra_env)
        self.components: dict[str, ManagedProcess] = {}
        #: Seconds each step of :meth:`start` took.
        self.startup_timings: dict[str, float] = {}
        self._restarts = 0

    def _environment(self, dags_folder: Path, extra_env: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RUNWAY_"))}
        # Every task process is a new interpreter; compiling Airflow's modules anew in each costs about
        # two CPU seconds. Compiled modules go to the temp dir, not next to the sources.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "PYTHONPYCACHEPREFIX": str(self.home.parent / "pycache"),
                "PATH": f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                # SQLite lets one process write at a time; the others wait up to ``timeout`` seconds for the lock
                # (5 by default). On a loaded machine Airflow 2.11's triggerer died of "database is locked" in
                # Trigger.clean_unused after 5 s, so every process here waits up to 30.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db?timeout=30",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                # Manual runs only: unpausing must not add a scheduled run of the @daily example.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                # A new triggerer adopts a dead one's triggers once its heartbeat is this old.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        env.update(self._version_environment())
        env.update(extra_env)
        return env

    def _version_environment(self) -> dict[str, str]:
        """Settings only this Airflow line reads."""
        raise NotImplementedError

    # -- processes -------------------------------------------------------------------------------

    def airflow_cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow <args>`` to completion in this stack's environment; return its stdout."""
        done = subprocess.run(
            [str(BIN_DIR / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def start_component(self, component: str) -> ManagedProcess:
        suffix = f"-{self._restarts}" if component in self.components else ""
        self._restarts += bool(suffix)
        log_path = self.home / f"{component}{suffix}.log"
        process = ManagedProcess(
            f"airflow {component}{suffix}",
            [str(BIN_DIR / "airflow"), component, *self.component_args.get(component, [])],
            log_path,
            self.env,
            self.home,
        )
        self.components[component] = self.registry.add(process.start())
        return process

    def kill_component(self, component: str) -> None:
        """SIGKILL a component's whole process group, as a crash would; it no longer counts as running."""
        process = self.components.pop(component)
        process.kill_hard()
        wait_until(lambda: not process.group_members(), 10, f"every process of {component} to be gone", 0.1)

    def prepare(self) -> None:
        """One-time setup between ``airflow db migrate`` and starting the components."""

    def start(self) -> None:
        """Migrate the database, prepare, start every component and wait until they report healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.airflow_cli("db", "migrate")
        self.startup_timings["db migrate"] = time.monotonic() - started
        started = time.monotonic()
        self.prepare()
        self.startup_timings["prepare"] = time.monotonic() - started
        started = time.monotonic()
        for component in self.components_to_start:
            self.start_component(component)
        self.wait_healthy(timeout=120)
        self.startup_timings["components healthy"] = time.monotonic() - started
        sockets = self.registry.assert_loopback_only()
        assert any(f"127.0.0.1:{self.api_port}" in found for found in sockets.values()), sockets

    def assert_alive(self) -> None:
        for name, process in self.components.items():
            assert process.alive(), f"airflow {name} exited:\n{process.tail()}"

    def health(self) -> dict[str, Any]:
        return dict(self.get("/monitor/health" if self.api_prefix == "/api/v2" else "/health"))

    def wait_healthy(self, timeout: float) -> None:
        """Wait until the REST API answers and reports every part in :attr:`health_parts` healthy."""

        def healthy() -> bool:
            self.assert_alive()
            try:
                health = self.health()
            except (OSError, urllib.error.URLError, AssertionError):
                return False
            return all((health.get(part) or {}).get("status") == "healthy" for part in self.health_parts)

        wait_until(healthy, timeout, "the Airflow components to report healthy")

    # -- REST API --------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``method`` on ``path`` under :attr:`api_prefix`, JSON in and out; an HTTP error fails the test."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api_url}{self.api_prefix}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        for name, value in self._auth_headers().items():
            req.add_header(name, value)
        try:
            with LOOPBACK_OPENER.open(req, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> HTTP {exc.code}: {exc.read()[:500]!r}") from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def wait_for_dag(self, dag_id: str, dag_file: str, timeout: float) -> dict[str, Any]:
        """Wait until ``dag_id`` is parsed; fail at once on an import error in ``dag_file``."""

        def parsed() -> dict[str, Any] | None:
            self.assert_alive()
            for error in self.get("/importErrors?limit=100")["import_errors"]:
                assert not error["filename"].endswith(dag_file), f"{dag_file} does not import:\n{error['stack_trace']}"
            dags = self.get(f"/dags?dag_id_pattern={dag_id}")["dags"]
            return next((d for d in dags if d["dag_id"] == dag_id), None)

        return dict(wait_until(parsed, timeout, f"DAG {dag_id} to be parsed"))

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, logical_date: datetime, conf: Mapping[str, Any]) -> None:
        body = {"dag_run_id": run_id, "logical_date": logical_date.isoformat(), "conf": dict(conf)}
        self.request("POST", f"/dags/{dag_id}/dagRuns", body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=100"
        return list(self.get(path)["task_instances"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"))

    def pool(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/pools/{name}"))

    # -- observing worker slots ------------------------------------------------------------------

    def _titles(self, recursive: bool) -> list[tuple[int, str]]:
        """``(parent pid, command line)`` of the scheduler's children (or all its descendants)."""
        scheduler = psutil.Process(self.components["scheduler"].pid)
        titles = []
        for child in scheduler.children(recursive=recursive):
            try:
                titles.append((child.ppid(), " ".join(part for part in child.cmdline() if part)))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        return titles

    def busy_workers(self) -> list[str]:
        """Titles of the executor's slots that run a task right now."""
        raise NotImplementedError

    def task_processes(self) -> list[str]:
        """Titles of the processes that run a task's code, under the busy slots."""
        raise NotImplementedError

    def free_executor_slots(self) -> int:
        """Executor slots observed free and ready for work."""
        raise NotImplementedError

    def describe_workers(self) -> str:
        """What the evidence table's executor column counts."""
        raise NotImplementedError


class Airflow3Stack(AirflowStack):
    """Airflow 3: api-server, scheduler (LocalExecutor), dag-processor and triggerer; ``/api/v2``.

    The SimpleAuthManager makes every user an admin, so requests need no token.
    """

    components_to_start = ("api-server", "scheduler", "dag-processor", "triggerer")
    component_args = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
    executor = "LocalExecutor"
    #: Fewer worker slots than the pool, so "deferred tasks hold no slot" is visible.
    executor_parallelism = 4
    api_prefix = "/api/v2"
    health_parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")

    def _version_environment(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__PARALLELISM": str(self.executor_parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__SECRET_KEY": "e2e-only-api-secret-key",
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-only-jwt-secret-" + "x" * 48,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        }

    def busy_workers(self) -> list[str]:
        """The LocalExecutor's worker processes that run a workload right now.

        An idle worker is titled ``airflow worker -- LocalExecutor: <idle>``; a busy one carries the
        name of its workload.
        """
        return [
            title
            for _, title in self._titles(recursive=False)
            if title.startswith(LOCAL_WORKER_TITLE_PREFIX) and title != LOCAL_IDLE_WORKER_TITLE
        ]

    def task_processes(self) -> list[str]:
        """Task processes: children of busy workers, titled ``airflow worker -- <ti id>``."""
        scheduler_pid = self.components["scheduler"].pid
        return [
            title for ppid, title in self._titles(recursive=True) if ppid != scheduler_pid and "airflow worker" in title
        ]

    def free_executor_slots(self) -> int:
        """LocalExecutor worker processes titled idle."""
        return sum(title == LOCAL_IDLE_WORKER_TITLE for _, title in self._titles(recursive=False))

    def describe_workers(self) -> str:
        return "LocalExecutor worker processes running a workload, and task processes under them"


class Airflow2Stack(AirflowStack):
    """Airflow 2.11: webserver, scheduler (SequentialExecutor, DAG parsing inside) and triggerer; ``/api/v1``.

    On SQLite Airflow 2 allows only the SequentialExecutor: the scheduler runs each task as an
    ``airflow tasks run`` child and waits for it, one at a time, so the executor has one slot. A
    deferred task's process has exited, which is what lets many tasks wait deferred at once. The REST
    API takes basic auth for a user created before the webserver starts.
    """

    components_to_start = ("webserver", "scheduler", "triggerer")
    component_args = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
    executor = "SequentialExecutor"
    executor_parallelism = 1
    api_prefix = "/api/v1"
    health_parts = ("metadatabase", "scheduler", "triggerer")
    #: The webserver spends a tenth of a second of CPU per API request; the states change more slowly.
    observe_interval = 1.0
    user = "e2e-admin"

    def __init__(self, registry: ProcessRegistry, home: Path, dags_folder: Path, extra_env: Mapping[str, str]) -> None:
        self.password = secrets.token_urlsafe(16)
        super().__init__(registry, home, dags_folder, extra_env)

    def _version_environment(self) -> dict[str, str]:
        return {
            "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.api_port),
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__WEBSERVER__SECRET_KEY": "e2e-only-webserver-secret-key",
            "AIRFLOW__API__AUTH_BACKENDS": "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth",
            # Parsed once at start: re-parsing every file every 30 s would cost a fifth of a core here.
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        }

    def prepare(self) -> None:
        self.airflow_cli(
            "users", "create", "--username", self.user, "--password", self.password, "--role", "Admin",
            "--firstname", "E2E", "--lastname", "Admin", "--email", "e2e-admin@example.invalid",
        )  # fmt: skip

    def _auth_headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _task_commands(self) -> list[tuple[int, str]]:
        return [(ppid, title) for ppid, title in self._titles(recursive=True) if SEQUENTIAL_TASK_COMMAND in title]

    def busy_workers(self) -> list[str]:
        """The scheduler's ``airflow tasks run`` child: the SequentialExecutor's one slot, taken."""
        scheduler_pid = self.components["scheduler"].pid
        return [title for ppid, title in self._task_commands() if ppid == scheduler_pid]

    def task_processes(self) -> list[str]:
        """Processes below the scheduler that run a task: the command and its task runner."""
        return [
            title
            for _, title in self._titles(recursive=True)
            if SEQUENTIAL_TASK_COMMAND in title or title.startswith(TASK_RUNNER_TITLE_PREFIX)
        ]

    def free_executor_slots(self) -> int:
        """1 when no task command runs and the scheduler's loop (which runs them in-line) heartbeats."""
        heartbeat = (self.health().get("scheduler") or {}).get("latest_scheduler_heartbeat")
        if not heartbeat:
            return 0
        age = datetime.now(timezone.utc) - datetime.fromisoformat(heartbeat)
        loop_free = age.total_seconds() < SCHEDULER_LOOP_FRESH_SECONDS
        return self.executor_parallelism - len(self.busy_workers()) if loop_free else 0

    def describe_workers(self) -> str:
        return (
            "the SequentialExecutor's one slot (an 'airflow tasks run' child of the scheduler) taken, "
            "and the processes running a task under the scheduler"
        )


def airflow_stack(
    registry: ProcessRegistry, home: Path, dags_folder: Path, extra_env: Mapping[str, str]
) -> AirflowStack:
    """The stack for the installed Airflow: :class:`Airflow3Stack` on 3.x, :class:`Airflow2Stack` on 2.11."""
    stack_class: type[AirflowStack] = Airflow3Stack if AIRFLOW_V_3_0_PLUS else Airflow2Stack
    return stack_class(registry, home, dags_folder, extra_env)


_FAILED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed setup or call, so teardown knows to print the process logs."""
    report = yield
    if report.failed:
        item.stash[_FAILED_KEY] = True
    return report


@pytest.fixture(autouse=True)
def loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients in this process (e.g. the simulator's) must reach loopback directly, never via a proxy."""
    for name in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(name)
        monkeypatch.setenv(name, ",".join(filter(None, [existing, "127.0.0.1,localhost"])))


@pytest.fixture
def process_registry(request: pytest.FixtureRequest) -> Iterator[ProcessRegistry]:
    """Processes started by the test: all stopped at teardown; their log tails printed on failure."""
    registry = ProcessRegistry()
    try:
        yield registry
    finally:
        if request.node.stash.get(_FAILED_KEY, False):
            registry.dump_logs()
        registry.stop_all()
    assert registry.leftovers() == {}, "processes survived teardown"


@pytest.fixture
def e2e_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short temp dir (AIRFLOW_HOME paths end up in process titles and socket names)."""
    return tmp_path_factory.mktemp("e2e")
