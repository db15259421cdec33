"""Alert levels: info while young, warning past the warning threshold, then critical; each
side of a drift judged by its own thresholds (docs/design.md, "Levels")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exporter.core.model import AlertLevel, Ignore, Side, Status
from exporter.core.settings import Levels, Thresholds


def alert_level(
    status: Status, drift_since: datetime | None, now: datetime, thresholds: Thresholds
) -> AlertLevel:
    """Seed's levels: info while young, warning past the warning threshold, then critical."""
    if status is not Status.DRIFT or drift_since is None:
        return AlertLevel.NONE
    age = (now - drift_since).total_seconds()
    if age >= thresholds.critical_seconds:
        return AlertLevel.CRITICAL
    if age >= thresholds.warning_seconds:
        return AlertLevel.WARNING
    return AlertLevel.INFO


LEVEL_RANK = {AlertLevel.NONE: 0, AlertLevel.INFO: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}


@dataclass(frozen=True)
class Verdict:
    """An audience's alert level and the side that set it (``alert_reason``)."""

    level: AlertLevel = AlertLevel.NONE
    reason: Side | None = None  # None when not drifting


def verdict(
    status: Status,
    missing_since: datetime | None,
    extra_since: datetime | None,
    now: datetime,
    levels: Levels,
) -> Verdict:
    """The higher of the missing side's level and the extra side's, each judged by its own
    thresholds from its own onset. On a tie the extra side (an exposure) is named."""
    if status is not Status.DRIFT:
        return Verdict()
    extra = alert_level(status, extra_since, now, levels.extra)
    missing = alert_level(status, missing_since, now, levels.missing)
    if extra_since is not None and LEVEL_RANK[extra] >= LEVEL_RANK[missing]:
        return Verdict(extra, Side.EXTRA)
    if missing_since is not None:
        return Verdict(missing, Side.MISSING)
    return Verdict()


def active_ignore(ignore: Ignore | None, now: datetime) -> Ignore | None:
    """The ignore in force, or None once it has expired."""
    return ignore if ignore is not None and ignore.until > now else None
