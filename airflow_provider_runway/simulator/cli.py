"""``runway-sim``: serve the simulator from the command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_runway.simulator.config import ALEPH_MODES, ERROR_STYLES, SimulatorConfig
from airflow_provider_runway.simulator.server import RunwaySimulator

#: Config fields with a hand-written flag (or none).
_SPECIAL = {
    "api_keys",
    "error_style",
    "webhook_hmac_key",
    "durations",
    "video_size_bytes",
    "aleph_failure_flags",
    "aleph_mode",
    "upload_dir",
    "allow_internal_fetch",
}
#: Environment variable that turns ``--allow-internal-fetch`` on (``1``, ``true`` or ``yes``).
ALLOW_INTERNAL_FETCH_ENV = "RUNWAY_SIM_ALLOW_INTERNAL_FETCH"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """Flags for the host, the port and every :class:`SimulatorConfig` field."""
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="runway-sim",
        description="A local simulator of KIE.ai's Runway and Aleph API (plus a /_sim/ control API).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8089, help="port to bind; 0 picks a free port")
    parser.add_argument("--api-key", dest="api_keys", action="append", default=[], help="accepted key (repeatable)")
    parser.add_argument("--error-style", choices=ERROR_STYLES, default=defaults.error_style)
    parser.add_argument("--webhook-hmac-key", default=None, help="sign callbacks with this key")
    parser.add_argument("--durations", default=",".join(map(str, defaults.durations)), help="accepted durations")
    parser.add_argument("--video-size-bytes", type=int, default=None, help="pad served MP4 files to this size")
    parser.add_argument(
        "--aleph-failure-flags",
        action="store_true",
        help="report failed Aleph tasks with successFlag 2 (failed at creation) or 3 (generation failed)",
    )
    parser.add_argument(
        "--aleph-mode",
        choices=ALEPH_MODES,
        default=defaults.aleph_mode,
        help="'on' serves Aleph; 404, 422 or 505 refuse it as a discontinued model",
    )
    parser.add_argument("--upload-dir", default=None, help="keep uploads here (default: a temporary directory)")
    parser.add_argument(
        "--allow-internal-fetch",
        action="store_true",
        default=os.environ.get(ALLOW_INTERNAL_FETCH_ENV, "").strip().lower() in ("1", "true", "yes"),
        help="let the URL upload fetch loopback, private and link-local addresses (and serve what it fetched); "
        f"also ${ALLOW_INTERNAL_FETCH_ENV}=1",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of task ids, jitter and failures (default: a fresh random seed, so a restarted "
        "simulator never reissues the ids of an earlier run)",
    )
    for field in dataclasses.fields(SimulatorConfig):
        if field.name in _SPECIAL or field.name == "seed":
            continue
        value = getattr(defaults, field.name)
        parser.add_argument(_flag(field.name), type=type(value), default=value, help=field.name.replace("_", " "))
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(SimulatorConfig)}
    values["api_keys"] = tuple(args.api_keys)
    if values["seed"] is None:
        values["seed"] = secrets.randbelow(2**31)
    values["durations"] = tuple(int(part) for part in str(args.durations).split(",") if part.strip())
    return SimulatorConfig(**values)


async def serve(
    sim: RunwaySimulator,
    host: str,
    port: int,
    access_log: bool = False,
    on_listening: Callable[[str], object] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_listening`` gets the URL once the server listens."""
    url = await sim.start(host, port, access_log=access_log)
    if on_listening is not None:
        on_listening(url)
    print(f"runway-sim listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runway-sim`` console script."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"runway-sim: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.access_log else logging.WARNING, format="%(message)s")
    sim = RunwaySimulator(config)
    try:
        asyncio.run(serve(sim, args.host, args.port, args.access_log))
    except OSError as exc:
        print(f"runway-sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
