"""The clock the exporter reads: aware UTC datetimes, to the second (passed in, never patched)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, to the second: what is persisted is what is shown, before and after a restart."""
    return datetime.now(UTC).replace(microsecond=0)
