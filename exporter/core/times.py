"""Time as text: ISO-8601 UTC instants (``...Z``), durations as people write them (``15m``),
and how long ago something happened (``2 h ago``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)\s*([smhd])")


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


_AGO_UNITS = ((86400, "d"), (3600, "h"), (60, "min"))


def time_ago(seconds: float) -> str:
    """ "just now", "5 min ago", "2 h ago", "3 d ago": the largest whole unit, rounded down.

    The one way the page, the hints (API, CLI, mail) and the digest say how long ago."""
    for size, unit in _AGO_UNITS:
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def parse_duration(value: object) -> int:
    """Seconds in ``30s``, ``15m``, ``1h``, ``1d``, ``1h30m`` or plain seconds, else ValueError."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 15m, 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return int(value)
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    parts = _PART.findall(text)
    if not text or not parts or _PART.sub("", text).strip():
        raise ValueError(f"'{value}' is not a duration like 30s, 15m, 1h")
    return sum(int(n) * _UNITS[unit] for n, unit in parts)
