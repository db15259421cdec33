"""Durations as people write them: ``30s``, ``15m``, ``1h``, ``1d``, ``1h30m`` or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)\s*([smhd])")


def parse_duration(value: object) -> int:
    """Seconds in ``value``; ValueError with a readable reason otherwise."""
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


def format_duration(seconds: float) -> str:
    """``2h 5m`` style, for humans (two largest units)."""
    seconds = int(max(seconds, 0))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])
