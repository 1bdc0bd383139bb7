"""Make ``aioresponses`` (0.7.9, the newest) work with aiohttp >= 3.14.

aiohttp 3.14 added a required ``stream_writer`` argument to ``ClientResponse.__init__`` that
aioresponses does not pass (pnuckowski/aioresponses#289). Inside :func:`mock_aiohttp` a missing
``stream_writer`` defaults to an object reporting no output, which is all a mocked response needs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from aiohttp import ClientResponse
from aioresponses import aioresponses


@contextmanager
def mock_aiohttp() -> Iterator[aioresponses]:
    """``aioresponses()`` with the aiohttp 3.14 compatibility patch applied for its duration."""
    original = ClientResponse.__init__

    @functools.wraps(original)
    def init(self: ClientResponse, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        original(self, *args, **kwargs)

    ClientResponse.__init__ = init  # type: ignore[method-assign]
    try:
        with aioresponses() as mock:
            yield mock
    finally:
        ClientResponse.__init__ = original  # type: ignore[method-assign]
