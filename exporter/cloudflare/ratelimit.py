"""How the Cloudflare client paces itself: the 429 gate, retries, and the counters it keeps.

Cloudflare counts 1,200 requests per 5 minutes per token, shared with the dashboard and every
other automation, and past that answers 429 to *every* call for up to 5 minutes. Hammering
during the block only prolongs it, so one 429 pauses the whole client: nothing goes out while
paused. A call that meets a short pause (ending within its wait budget, the client's timeout)
waits it out and then goes out; a call that meets a longer one is refused locally, without
touching the network.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import requests
from urllib3.util.retry import Retry

from exporter.cloudflare.wire import RateLimited, decode, first_error
from exporter.core.times import format_time

log = logging.getLogger("vault_drift.cloudflare")

DEFAULT_RETRY_AFTER_SECONDS = 300.0
# A retry-after of 0 would let a blocked client hammer the API; wait at least this long.
MIN_RETRY_AFTER_SECONDS = 1.0

_RATELIMIT_FIELD = re.compile(r";\s*([rt])\s*=\s*([0-9]+(?:\.[0-9]+)?)")


class _IdempotentRetry(Retry):
    """urllib3 retries a failed connect whatever the method; a create (POST) goes out once."""

    def increment(
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any
    ) -> Self:
        if method is not None and not self._is_method_retryable(method):
            spent = self.new(total=0)  # Retry's own increment then raises: no retry left
            return super(_IdempotentRetry, spent).increment(method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)


def retry_policy() -> Retry:
    """Two quick retries of GET/PUT on connection errors and 502/503/504.

    Not 429 (the gate owns it) and not read timeouts: a timed-out call already cost the whole
    timeout, retrying would multiply it; the next check cycle is the retry.
    """
    return _IdempotentRetry(
        total=2,
        connect=2,
        read=False,
        status=2,
        other=0,
        allowed_methods=frozenset({"GET", "PUT"}),
        status_forcelist=(502, 503, 504),
        backoff_factor=0.2,
        respect_retry_after_header=False,
        raise_on_status=False,  # the last 5xx is returned and reported with its status
    )


def status_class(status: int | None) -> str:
    """ "2xx".."5xx" for an HTTP status, "error" when no response came back (transport error)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def parse_retry_after(value: str | None, wall_now: float) -> float:
    """Seconds to wait from a ``retry-after`` header (delta-seconds or HTTP-date)."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - wall_now
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
    if seconds != seconds or seconds < 0:  # NaN or negative: garbage
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(seconds, MIN_RETRY_AFTER_SECONDS)


def parse_ratelimit(value: str | None) -> tuple[float | None, float | None]:
    """``(remaining, reset_seconds)`` from ``Ratelimit: "default";r=<remaining>;t=<reset>``."""
    if not value:
        return None, None
    fields = {name: float(number) for name, number in _RATELIMIT_FIELD.findall(value)}
    return fields.get("r"), fields.get("t")


Tally = dict[tuple[str, str], int]
"""Requests counted by (method, status class): ``("GET", "2xx")``, ``("POST", "error")``."""


@dataclass(frozen=True)
class D1Usage:
    """What a Vault on Cloudflare D1 cost: its REST calls, the rows D1 billed, the wait."""

    requests: Tally
    rows_read: int
    rows_written: int
    seconds: float


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of one client's counters, read by the metrics and the benchmarks."""

    requests: Tally  # Access API calls
    rate_limited_total: int
    rate_limit_remaining: float | None
    rate_limit_reset_seconds: float | None
    paused_until: float | None  # monotonic; may lie in the past
    paused_until_wall: float | None  # unix time
    audit: Tally  # account audit-log calls
    d1: D1Usage | None  # None while the Vault is not on D1


@dataclass
class ClientStats:
    """Counters of one client; every write and ``snapshot()`` hold ``lock``."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, status_class)
    rate_limited_total: int = 0
    rate_limit_remaining: float | None = None
    rate_limit_reset_seconds: float | None = None
    # monotonic; may lie in the past when no call was attempted since the pause ended
    paused_until: float | None = None
    paused_until_wall: float | None = None  # unix time, for the metric
    # D1's REST calls (a Vault on Cloudflare D1) share the budget: counted apart, by api.
    d1_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    d1_rows_read: int = 0
    d1_rows_written: int = 0
    d1_seconds: float = 0.0  # time spent waiting for D1's answers
    d1_used: bool = False
    # The account audit log (attribution, docs/design.md) shares the budget too: counted apart.
    audit_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, method: str, status: int | None) -> None:
        with self.lock:
            self.requests[(method, status_class(status))] += 1

    def count_d1_request(self, method: str, status: int | None, seconds: float = 0.0) -> None:
        with self.lock:
            self.d1_requests[(method, status_class(status))] += 1
            self.d1_seconds += seconds

    def count_audit_request(self, method: str, status: int | None) -> None:
        with self.lock:
            self.audit_requests[(method, status_class(status))] += 1

    def count_d1_rows(self, read: int, written: int) -> None:
        """Rows D1 says a successful answer read and wrote (its ``meta``)."""
        with self.lock:
            self.d1_rows_read += read
            self.d1_rows_written += written

    def record_ratelimit_header(self, value: str | None) -> None:
        remaining, reset = parse_ratelimit(value)
        if remaining is None:
            return
        with self.lock:
            self.rate_limit_remaining = remaining
            self.rate_limit_reset_seconds = reset

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of the counters."""
        with self.lock:
            d1 = D1Usage(
                dict(self.d1_requests), self.d1_rows_read, self.d1_rows_written, self.d1_seconds
            )
            return StatsSnapshot(
                requests=dict(self.requests),
                rate_limited_total=self.rate_limited_total,
                rate_limit_remaining=self.rate_limit_remaining,
                rate_limit_reset_seconds=self.rate_limit_reset_seconds,
                paused_until=self.paused_until,
                paused_until_wall=self.paused_until_wall,
                audit=dict(self.audit_requests),
                d1=d1 if self.d1_used else None,
            )


class RateLimitGate:
    """Decides whether a call may go out, and for how long a 429 stops all calls.

    The pause after the n-th consecutive 429 is ``retry_after * 2**(n-1)``, capped. A 429
    that arrives while a pause is already running (a sibling thread's request, in flight when
    the block started) extends nothing and does not lengthen the streak. ``wait_turn`` lets a
    call sleep through a pause that ends soon enough (``sleep`` is injectable for tests).
    """

    def __init__(
        self,
        stats: ClientStats,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_pause_seconds: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._max_pause = max_pause_seconds
        self._lock = threading.Lock()
        self._paused_until: float | None = None
        self._consecutive_429s = 0

    def paused_until(self) -> float | None:
        """Monotonic time until which calls are refused, or None when calls may go out."""
        now = self._clock()
        with self._lock:
            if self._paused_until is not None and now >= self._paused_until:
                self._paused_until = None
                self._publish(None)
            return self._paused_until

    def wait_turn(self, max_wait: float) -> float | None:
        """Wait until calls may go out, if that is at most ``max_wait`` seconds from now.

        Returns None once a call may go out (at once, or after sleeping through the pause).
        A pause that ends later is not waited for at all: its end (monotonic) is returned.
        Waiting never exceeds ``max_wait`` in total, even if another 429 starts a new pause
        while this call sleeps.
        """
        deadline = self._clock() + max_wait
        while True:
            retry_at = self.paused_until()
            if retry_at is None:
                return None
            if retry_at > deadline:
                return retry_at
            wait = max(retry_at - self._clock(), 0.0)
            log.debug("waiting %.1fs for the rate-limit pause to end", wait)
            self._sleep(wait)

    def take_turn(self, max_wait: float, request: str) -> None:
        """Wait out a pause that ends within ``max_wait``; refuse the call (``RateLimited``,
        saying when calls resume) if it ends later."""
        retry_at = self.wait_turn(max_wait)
        if retry_at is None:
            return
        wait = max(retry_at - self._clock(), 0.0)
        resume = datetime.fromtimestamp(math.ceil(self._wall_clock() + wait), UTC)
        log.debug("%s refused: rate limited for another %.0fs", request, wait)
        raise RateLimited(
            f"rate limited: calls paused for another {math.ceil(wait)}s,"
            f" until {format_time(resume)}",
            retry_at=retry_at,
            retry_after_seconds=wait,
            request=request,
        )

    def rate_limited(self, response: requests.Response, request: str, token: str) -> RateLimited:
        """A 429 answer: pause every call (of every API sharing this gate) and say for how long."""
        retry_at, pause = self.on_429(response.headers.get("retry-after"))
        code, message = first_error(decode(response))
        log.warning("Cloudflare rate limit (429) on %s: all calls paused for %.0fs", request, pause)
        return RateLimited(
            scrub(message, token) or f"rate limited: all calls paused for {pause:.0f}s",
            retry_at=retry_at,
            retry_after_seconds=pause,
            status=429,
            code=code,
            request=request,
        )

    def on_429(self, retry_after_header: str | None) -> tuple[float, float]:
        """Start (or keep) the pause; returns ``(retry_at, pause_seconds)``."""
        now = self._clock()
        retry_after = parse_retry_after(retry_after_header, self._wall_clock())
        with self._lock:
            self._stats_rate_limited()
            if self._paused_until is not None and now < self._paused_until:
                return self._paused_until, self._paused_until - now
            self._consecutive_429s += 1
            pause = min(retry_after * 2 ** (self._consecutive_429s - 1), self._max_pause)
            self._paused_until = now + pause
            self._publish(pause)
            return self._paused_until, pause

    def on_success(self, started_at: float) -> None:
        """A call that started after the last pause went through: the block is over."""
        with self._lock:
            if self._paused_until is None or started_at >= self._paused_until:
                self._consecutive_429s = 0
                if self._paused_until is not None:
                    self._paused_until = None
                    self._publish(None)

    def _stats_rate_limited(self) -> None:
        with self._stats.lock:
            self._stats.rate_limited_total += 1

    def _publish(self, pause: float | None) -> None:
        with self._stats.lock:
            self._stats.paused_until = self._paused_until
            self._stats.paused_until_wall = None if pause is None else self._wall_clock() + pause


def scrub(text: str | None, token: str | None) -> str | None:
    """Cloudflare's own message could echo a header back; the token never leaves."""
    if text and token and token in text:
        return text.replace(token, "<redacted>")
    return text
