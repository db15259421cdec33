"""Time as the exporter reads and writes it: aware UTC datetimes, ISO-8601 ``...Z`` text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, to the second: what is persisted is what is shown, before and after a restart."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, second precision (what Vault and the API use)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def parse_time(text: str | None) -> datetime | None:
    """Vault's timestamps (``2024-12-31T10:00:00Z``, SQLite's ``2024-12-31 10:00:00``)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FixedClock:
    """A clock tests and demos can set and advance."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)
