"""The operator's settings: persisted in the Vault, changed live through the API and the page.

Not to be confused with ``exporter.config``, the process configuration read once at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from exporter.core.model import AutoSync, Side

# ``cloudflare_feed``: how Cloudflare-side edits are noticed between full listings.
FEED_AUDIT_LOG, FEED_OFF = "audit_log", "off"
FEEDS = (FEED_AUDIT_LOG, FEED_OFF)


@dataclass(frozen=True)
class Thresholds:
    warning_seconds: int = 3600
    critical_seconds: int = 86400


@dataclass(frozen=True)
class Levels:
    """The thresholds each side of a drift is judged by.

    Extra members (an exposure) have their own, stricter thresholds; they are never judged
    more leniently than missing ones (an outage): past a missing threshold, an extra member
    of the same age is at least as high.
    """

    missing: Thresholds = field(default_factory=Thresholds)
    extra: Thresholds = field(default_factory=lambda: Thresholds(900, 3600))

    def of(self, kind: Side) -> Thresholds:
        return self.extra if kind == Side.EXTRA else self.missing


@dataclass(frozen=True)
class Settings:
    check_interval_seconds: int = 900
    warning_threshold_seconds: int = 3600
    critical_threshold_seconds: int = 86400
    auto_sync: AutoSync = AutoSync.OFF
    history_retention_days: int = 90
    digest_hour_utc: int = 8
    extra_warning_threshold_seconds: int = 900
    extra_critical_threshold_seconds: int = 3600
    # End the Access sessions of every leaver (README, "Effective removal").
    revoke_sessions: bool = True
    cloudflare_feed: str = FEED_AUDIT_LOG
    feed_interval_seconds: int = 30
    feed_overlap_seconds: int = 120
    full_check_interval_seconds: int = 900

    @property
    def thresholds(self) -> Thresholds:
        """The missing side's thresholds (the seed's)."""
        return Thresholds(self.warning_threshold_seconds, self.critical_threshold_seconds)

    @property
    def levels(self) -> Levels:
        missing = self.thresholds
        extra = Thresholds(
            min(self.extra_warning_threshold_seconds, missing.warning_seconds),
            min(self.extra_critical_threshold_seconds, missing.critical_seconds),
        )
        return Levels(missing, extra)

    def as_document(self) -> dict[str, Any]:
        return {
            "check_interval_seconds": self.check_interval_seconds,
            "warning_threshold_seconds": self.warning_threshold_seconds,
            "critical_threshold_seconds": self.critical_threshold_seconds,
            "extra_warning_threshold_seconds": self.extra_warning_threshold_seconds,
            "extra_critical_threshold_seconds": self.extra_critical_threshold_seconds,
            "auto_sync": str(self.auto_sync),
            "history_retention_days": self.history_retention_days,
            "digest_hour_utc": self.digest_hour_utc,
            "revoke_sessions": self.revoke_sessions,
            "cloudflare_feed": self.cloudflare_feed,
            "feed_interval_seconds": self.feed_interval_seconds,
            "feed_overlap_seconds": self.feed_overlap_seconds,
            "full_check_interval_seconds": self.full_check_interval_seconds,
        }


LIMITS = {
    "check_interval_seconds": (30, 86400),
    "warning_threshold_seconds": (60, 365 * 86400),
    "critical_threshold_seconds": (60, 365 * 86400),
    "extra_warning_threshold_seconds": (60, 365 * 86400),
    "extra_critical_threshold_seconds": (60, 365 * 86400),
    "history_retention_days": (1, 3650),
    "digest_hour_utc": (0, 23),
    "feed_interval_seconds": (10, 3600),
    "feed_overlap_seconds": (0, 3600),
    "full_check_interval_seconds": (30, 86400),
}


FLAGS = ("revoke_sessions",)  # settings that are true or false


# Each warning threshold must stay below its critical one.
ORDERED = (
    ("warning_threshold_seconds", "critical_threshold_seconds"),
    ("extra_warning_threshold_seconds", "extra_critical_threshold_seconds"),
)


class SettingsError(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def apply_settings(current: Settings, changes: dict[str, Any]) -> Settings:
    """``current`` with ``changes`` applied, or SettingsError naming every bad key."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "auto_sync":
            try:
                values[key] = AutoSync(value)
            except ValueError:
                problems[key] = f"must be one of {', '.join(AutoSync)}"
        elif key in FLAGS:
            if isinstance(value, bool):
                values[key] = value
            else:
                problems[key] = "must be true or false"
        elif key == "cloudflare_feed":
            if value in FEEDS:
                values[key] = value
            else:
                problems[key] = f"must be one of {', '.join(FEEDS)}"
        elif key in LIMITS:
            low, high = LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int):
                problems[key] = "must be a whole number"
            elif not low <= value <= high:
                problems[key] = f"must be between {low} and {high}"
            else:
                values[key] = value
        else:
            problems[key] = "unknown setting"
    if problems:
        raise SettingsError(problems)
    result = replace(current, **values)
    for warning, critical in ORDERED:
        if getattr(result, warning) >= getattr(result, critical):
            problems[warning] = f"must be less than {critical}"
    if problems:
        raise SettingsError(problems)
    return result
