"""Upload memory: what streaming an input to KIE's file-stream upload costs, against ``requests``' ``files=``.

A sink on ``127.0.0.1`` (a thread in this process) reads each body in 64 KiB chunks and answers KIE's
documented JSON. For each size a file is written to a temporary folder, then sent twice: through
:func:`airflow_provider_runway.transfer.uploads.upload_file` (one read into a private copy, then the send) and
the usual way, ``requests.post(url, files={"file": fh})``, which builds the whole body in memory. The
peak growth of Python allocations (``tracemalloc``) is printed for both; the times include the copy.

Usage (from the repository root)::

    python -m bench.upload_memory                 # 10, 50 and 100 MB
    python -m bench.upload_memory --sizes 5 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from airflow_provider_runway.transfer.uploads import FILE_STREAM_UPLOAD_PATH, MIB, upload_file

ANSWER = json.dumps(
    {"success": True, "code": 200, "msg": "ok", "data": {"downloadUrl": "https://files.example/in.mp4"}}
).encode()


@contextmanager
def sink() -> Iterator[str]:
    """A loopback HTTP server that discards request bodies and answers KIE's upload JSON."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(64 * 1024, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def measure(run: Callable[[], Any]) -> tuple[float, int]:
    """Seconds ``run`` took and the peak growth of traced allocations while it ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return elapsed, peak - before


def write_file(path: Path, size: int) -> None:
    block = b"\x00\x00\x00\x18ftypmp42" + bytes(MIB - 12)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100], help="file sizes in MB")
    args = parser.parse_args(argv)
    rows = []
    with sink() as url, requests.Session() as session, tempfile.TemporaryDirectory() as folder:
        session.trust_env = False
        for megabytes in args.sizes:
            path = Path(folder) / f"in-{megabytes}.mp4"
            write_file(path, megabytes * MIB)

            def ours(path: Path = path) -> None:
                upload_file(session, url, path, max_bytes=path.stat().st_size)

            def naive(path: Path = path) -> None:
                with path.open("rb") as handle:
                    session.post(f"{url}{FILE_STREAM_UPLOAD_PATH}", files={"file": handle}, timeout=60).close()

            ours_time, ours_peak = measure(ours)
            naive_time, naive_peak = measure(naive)
            rows.append((megabytes, ours_time, ours_peak, naive_time, naive_peak))
            path.unlink()
    print(f"{'size':>6}  {'upload_file':>12}  {'peak':>10}  {'files=':>8}  {'peak':>10}")
    for megabytes, ours_time, ours_peak, naive_time, naive_peak in rows:
        print(
            f"{megabytes:>4} MB  {ours_time:>10.2f} s  {ours_peak / MIB:>6.2f} MiB  "
            f"{naive_time:>6.2f} s  {naive_peak / MIB:>6.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
