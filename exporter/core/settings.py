"""The operator's settings: persisted in the Vault, changed live through the API and the page.

Not to be confused with ``exporter.config``, the process configuration read once at start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from exporter.core.model import AutoSync


@dataclass(frozen=True)
class Thresholds:
    warning_seconds: int = 3600
    critical_seconds: int = 86400


@dataclass(frozen=True)
class Settings:
    check_interval_seconds: int = 900
    warning_threshold_seconds: int = 3600
    critical_threshold_seconds: int = 86400
    auto_sync: AutoSync = AutoSync.OFF
    history_retention_days: int = 90
    digest_hour_utc: int = 8

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.warning_threshold_seconds, self.critical_threshold_seconds)

    def as_document(self) -> dict[str, Any]:
        return {
            "check_interval_seconds": self.check_interval_seconds,
            "warning_threshold_seconds": self.warning_threshold_seconds,
            "critical_threshold_seconds": self.critical_threshold_seconds,
            "auto_sync": str(self.auto_sync),
            "history_retention_days": self.history_retention_days,
            "digest_hour_utc": self.digest_hour_utc,
        }


LIMITS = {
    "check_interval_seconds": (30, 86400),
    "warning_threshold_seconds": (60, 365 * 86400),
    "critical_threshold_seconds": (60, 365 * 86400),
    "history_retention_days": (1, 3650),
    "digest_hour_utc": (0, 23),
}


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
                problems[key] = "must be one of off, add_only, full"
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
    if result.warning_threshold_seconds >= result.critical_threshold_seconds:
        raise SettingsError(
            {"warning_threshold_seconds": "must be less than critical_threshold_seconds"}
        )
    return result
