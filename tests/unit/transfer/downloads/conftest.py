"""Storage unit tests: a stub resolver for the mocked file hosts, and no connection beyond loopback.

``socket.getaddrinfo`` is replaced, so no name is ever looked up for real, and ``socket.connect`` to
anything but loopback fails the test instead of sending a packet.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

#: What a name resolves to unless a test says otherwise: a public address that is never contacted
#: (``responses`` answers the requests, and connections beyond loopback are refused below).
PUBLIC_ADDRESS = "93.184.215.14"


class StubResolver:
    """Stands in for DNS: ``names`` maps a host to its addresses; IP literals resolve to themselves.

    ``then`` maps a host to the addresses of its later lookups (a name that rebinds after a check).
    """

    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self.names: dict[str, list[str]] = {}
        self.then: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            return self.original(host, port, *args, **kwargs)
        self.lookups.append(name)
        if name in self.then and self.lookups.count(name) > 1:
            addresses = self.then[name]
        else:
            addresses = self.names.get(name, [PUBLIC_ADDRESS])
        infos = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port or 0), 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0))))
        return infos


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> StubResolver:
    stub = StubResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every socket connect attempted; one to a non-loopback address fails the test instead of leaving."""
    attempts: list[Any] = []
    original: Callable[..., Any] = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if not isinstance(address, tuple):  # a Unix socket
            return original(sock, address)
        attempts.append(address)
        if not ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address!r}")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
