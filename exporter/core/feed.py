"""The change feed's pure parts: which stretch of the audit log a poll reads, which entries
are new, which audiences they touch, and how often the full listing runs (README, "Change
feed"; docs/feed.md). No I/O, no clock reads: times are passed in.

Entries may appear in the log late (Cloudflare documents no delay), and several may share a
second. So a poll never reads on from one second past the last entry seen: it reads again
from the newest entry seen minus an overlap, and skips, by id, the entries it has already
acted on. The ids are kept as long as the overlap can bring them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exporter.core.attribution import GroupChange
from exporter.core.settings import FEED_OFF, Settings

# Errors in a row after which the feed counts as down (the full listing falls back to
# ``check_interval_seconds``); one failed poll is retried by the next one.
DOWN_AFTER_ERRORS = 3


@dataclass(frozen=True)
class Window:
    """``[since, before)``: the stretch of the log one poll asks for."""

    since: datetime
    before: datetime


def poll_window(
    newest_seen: datetime | None, last_before: datetime, now: datetime, overlap: timedelta
) -> Window:
    """From the newest entry seen (or, in a quiet account, the end of the last poll's
    stretch minus the overlap) minus the overlap, to now.

    A busy account reads from its newest entry back by ``overlap``; a quiet one does not read
    further and further back: at most about two overlaps and an interval.
    """
    floor = last_before - overlap
    cursor = floor if newest_seen is None else max(newest_seen, floor)
    return Window(min(cursor, now) - overlap, now)


@dataclass
class SeenIds:
    """Entries already taken, by id, with their times; forgotten once the overlap cannot
    bring them back. Not thread-safe: one feed owns it under its own lock."""

    _at: dict[str, datetime] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, audit_log_id: object) -> bool:
        return audit_log_id in self._at

    def fresh(self, changes: Iterable[GroupChange]) -> list[GroupChange]:
        """The entries not taken before (the first of two copies in one batch too); they
        count as taken from now on."""
        result = []
        for change in changes:
            if change.audit_log_id in self._at:
                continue
            self._at[change.audit_log_id] = change.at
            result.append(change)
        return result

    def remember(self, changes: Iterable[GroupChange]) -> None:
        """Entries taken by an earlier process (read back from the store at start)."""
        for change in changes:
            self._at.setdefault(change.audit_log_id, change.at)

    def forget_before(self, moment: datetime) -> None:
        self._at = {i: at for i, at in self._at.items() if at >= moment}


def audiences_touched(
    changes: Iterable[GroupChange], audience_of_group: Mapping[str, str]
) -> list[str]:
    """The audiences whose group the entries are about, sorted; entries about any other
    group (or resource) touch none."""
    return sorted(
        {audience_of_group[c.group_id] for c in changes if c.group_id in audience_of_group}
    )


def full_interval_seconds(settings: Settings, feed_healthy: bool) -> int:
    """Seconds between full listings: the safety net while the feed is healthy, the check
    interval when it is off or down."""
    if settings.cloudflare_feed != FEED_OFF and feed_healthy:
        return settings.full_check_interval_seconds
    return settings.check_interval_seconds


def next_poll_delay(interval: float, took: float) -> float:
    """How long the poller waits after a poll that took ``took`` seconds: polls start every
    ``interval`` whatever their checks took (a poll that overran it is followed at once), so
    an edit waits at most one interval for the listing that sees it."""
    return max(0.0, interval - took)
