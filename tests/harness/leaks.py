"""Leak scanner: distinctive secrets and the capture of every surface they must never reach."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping

# The keys are assembled at run time so that their text is not in this file: Airflow stores the
# source of a DAG file (the secrets DAG's module imports this one) in its metadata DB, which is scanned.
#: A distinctive API key: any occurrence in captured output is a leak.
API_KEY = "-".join(("sk", "LEAKCHECK", "7f3a9c"))
#: A distinctive webhook HMAC key, checked the same way.
WEBHOOK_KEY = "-".join(("whsec", "LEAKCHECK", "4e8d2b"))
#: A second API key: the ``runway_badkey`` connection uses it and the simulator refuses it.
WRONG_API_KEY = "-".join(("sk", "LEAKCHECK", "WRONG", "91c0d7"))
SECRETS: tuple[str, ...] = (API_KEY, WEBHOOK_KEY)


def count_leaks(*texts: object, secrets: tuple[str, ...] = SECRETS) -> int:
    """Occurrences of any secret in the text form (``str`` and ``repr``) of ``texts``."""
    total = 0
    for item in texts:
        for text in {str(item), repr(item)} if not isinstance(item, str) else {item}:
            total += sum(text.count(secret) for secret in secrets)
    return total


def count_leaks_in_bytes(files: Mapping[str, bytes], secrets: tuple[str, ...] = (*SECRETS, WRONG_API_KEY)) -> int:
    """Occurrences of any secret in raw file contents (the metadata DB, logs)."""
    return sum(blob.count(secret.encode()) for blob in files.values() for secret in secrets)


class LeakWatch(logging.Handler):
    """Keeps every log record (formatted, with tracebacks) and any text handed to :meth:`keep`."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self._lock_texts = threading.Lock()
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted is still scanned raw
            text = f"{record.msg!r} {record.args!r}"
        self.keep(text, repr(record.__dict__))

    def keep(self, *items: object) -> None:
        with self._lock_texts:
            self.texts.extend(item if isinstance(item, str) else f"{item!s} {item!r}" for item in items)

    def leaks(self) -> int:
        with self._lock_texts:
            return count_leaks(*self.texts)

    @contextlib.contextmanager
    def installed(self) -> Iterator[LeakWatch]:
        """Attach to the root logger (DEBUG) for the duration of the block."""
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            root.removeHandler(self)
            root.setLevel(old_level)


@contextlib.contextmanager
def captured_fds() -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 to a temp file; the list holds its text after the block."""
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))
