"""One lock for every check and sync, so those of one audience never interleave; the cycle
service takes it, once per call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Busy(Exception):
    """Another check or sync is running and did not finish in time (the API answers 409)."""


class WorkLock:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()  # not re-entrant: taken once, by the cycle service

    @contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.timeout if timeout is None else timeout):
            raise Busy("another check or sync is running; try again shortly")
        try:
            yield
        finally:
            self._lock.release()
