"""Run the simulator in a background thread with its own event loop (for tests and scripts)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from airflow_provider_runway.simulator.client import SimulatorClient
from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.server import RunwaySimulator

STARTUP_TIMEOUT = 30.0


class SimulatorThread(SimulatorClient):
    """A :class:`RunwaySimulator` served from a daemon thread; a context manager.

    Once started, :attr:`url` is the base URL and every :class:`SimulatorClient` method drives it
    over HTTP. :attr:`simulator` gives direct access to the in-process server (use with care: it
    belongs to the background loop).

    :param config: simulator configuration.
    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one.
    """

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__("http://not-started")
        self.simulator = RunwaySimulator(config)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> SimulatorThread:
        """Start serving; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="runway-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            raise RuntimeError("runway-sim did not start in time")
        if self._error is not None:
            raise RuntimeError(f"runway-sim failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            url = loop.run_until_complete(self.simulator.start(self.host, self.port))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.simulator.stop())
            loop.close()

    def stop(self) -> None:
        """Stop the server and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(STARTUP_TIMEOUT)
        self._thread = None
        self._loop = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
