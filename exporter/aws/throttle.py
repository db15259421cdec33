"""How the AWS client paces itself: one pause for every AWS call after throttling, with
exponential backoff, and the counters it keeps.

AWS and Cloudflare have separate budgets: a ``ThrottlingException`` (or a 429 / 5xx) from the
identity store pauses AWS calls only, never Cloudflare's. A call that meets a pause ending
within its wait budget waits it out; one that meets a longer pause is refused at once,
without touching the network, saying when calls resume.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.core.provider import ProviderStats

FIRST_PAUSE_SECONDS = 1.0  # when AWS names no RetryAfterSeconds
MAX_PAUSE_SECONDS = 300.0


def status_class(status: int | None) -> str:
    """ "2xx".."5xx" for an HTTP status, "error" when no answer came back."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


@dataclass
class AwsStats:
    """Counters of one client; every write and ``snapshot()`` hold ``lock``."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, class)
    throttled_total: int = 0
    paused_until_wall: float | None = None  # unix time, for the metric
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, operation: str, status: int | None) -> None:
        with self.lock:
            self.requests[(operation, status_class(status))] += 1

    def snapshot(self) -> ProviderStats:
        with self.lock:
            return ProviderStats(dict(self.requests), self.throttled_total, self.paused_until_wall)


class ThrottleGate:
    """Decides whether an AWS call may go out, and for how long throttling stops all calls.

    The pause after the n-th consecutive throttle is ``base * 2**(n-1)`` (``base`` is AWS's
    ``RetryAfterSeconds`` when it gives one), capped. A throttle that arrives while a pause
    runs (a sibling thread's call, in flight when it began) extends nothing.
    """

    def __init__(
        self,
        stats: AwsStats,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_pause_seconds: float = MAX_PAUSE_SECONDS,
    ) -> None:
        self._stats, self._clock, self._wall_clock, self._sleep = stats, clock, wall_clock, sleep
        self._max_pause = max_pause_seconds
        self._lock = threading.Lock()
        self._paused_until: float | None = None
        self._streak = 0

    def paused_until(self) -> float | None:
        """Monotonic time until which calls are refused, or None when calls may go out."""
        now = self._clock()
        with self._lock:
            if self._paused_until is not None and now >= self._paused_until:
                self._paused_until = None
                self._publish(None)
            return self._paused_until

    def wait_turn(self, max_wait: float) -> float | None:
        """Sleep through a pause that ends within ``max_wait``: None once a call may go out;
        the pause's end (monotonic) when it ends later (then nothing was waited)."""
        deadline = self._clock() + max_wait
        while True:
            retry_at = self.paused_until()
            if retry_at is None:
                return None
            if retry_at > deadline:
                return retry_at
            self._sleep(max(retry_at - self._clock(), 0.0))

    def seconds_left(self, retry_at: float) -> int:
        return math.ceil(max(retry_at - self._clock(), 0.0))

    def on_throttle(self, retry_after: float | None) -> float:
        """Start (or keep) the pause; returns its length in seconds."""
        now = self._clock()
        with self._lock:
            with self._stats.lock:
                self._stats.throttled_total += 1
            if self._paused_until is not None and now < self._paused_until:
                return self._paused_until - now
            self._streak += 1
            base = retry_after if retry_after and retry_after > 0 else FIRST_PAUSE_SECONDS
            pause = min(base * 2 ** (self._streak - 1), self._max_pause)
            self._paused_until = now + pause
            self._publish(pause)
            return pause

    def on_success(self, started_at: float) -> None:
        """A call that started after the last pause went through: the throttling is over."""
        with self._lock:
            if self._paused_until is None or started_at >= self._paused_until:
                self._streak = 0
                if self._paused_until is not None:
                    self._paused_until = None
                    self._publish(None)

    def _publish(self, pause: float | None) -> None:
        with self._stats.lock:
            self._stats.paused_until_wall = None if pause is None else self._wall_clock() + pause
