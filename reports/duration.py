"""Durations and instants as people read them in a mail: "2 hours", "1 day 3 hours"."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def human_duration(seconds: float) -> str:
    """The two largest non-zero units, rounded down: 93784 s -> "1 day 2 hours"."""
    remaining = int(max(seconds, 0))
    if remaining < 60:
        return "less than a minute"
    parts: list[str] = []
    for name, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {name}" + ("" if count == 1 else "s"))
        elif parts:
            break  # "1 day 5 minutes" reads as noise: stop at the first gap
        if len(parts) == 2:
            break
    return " ".join(parts)


def utc_text(moment: datetime | None) -> str:
    """An instant for a reader: ``2026-11-25 08:00 UTC``; an em dash when unknown."""
    if moment is None:
        return "\u2014"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
