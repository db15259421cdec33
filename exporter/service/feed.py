"""The change feed: Cloudflare-side edits seen within seconds, not at the next full listing.

Every ``feed_interval_seconds`` one listing of the account audit log (the reader attribution
uses, ``cloudflare/audit.py``) asks for the stretch ``core.feed.poll_window`` chooses. Its
entries about the audiences' groups are handed to attribution (one reader, one cursor: what
the feed read is never listed again), the ones not taken before are kept, and each audience
they touch is checked alone through the cycle: one GET of its group, no listing, then
auto-sync and every follower. Logpush deliveries (``take_pushed``) go the same way.

The full listing stays as the safety net: ``full_interval_seconds`` says how often, the
scheduler asks. A 401/403 turns the feed off until restart (one log line); three failed polls
in a row make it down; either way the full listing falls back to ``check_interval_seconds``
(docs/feed.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exporter.clock import Clock, utc_now
from exporter.cloudflare.audit import AuditListing, AuditLogReader, group_change_from_json
from exporter.cloudflare.wire import CloudflareError, RateLimited
from exporter.core.attribution import EXPORTER, SKEW, GroupChange
from exporter.core.feed import (
    DOWN_AFTER_ERRORS,
    SeenIds,
    audiences_touched,
    full_interval_seconds,
    poll_window,
)
from exporter.core.settings import FEED_OFF, Settings
from exporter.service.attribution import Attributor
from exporter.service.cycle import CycleService
from exporter.service.snapshots import SnapshotStore
from exporter.service.work_lock import Busy
from exporter.vault.store import VaultError

log = logging.getLogger("vault_drift.feed")

SOURCES = ("poll", "logpush")
CHECK_TIMEOUT = 60.0


@dataclass
class FeedStats:
    """What ``/metrics`` shows of the feed (``metrics/feed.py``)."""

    enabled: bool = False  # ``cloudflare_feed`` is ``audit_log``
    up: bool | None = None  # None before the first poll
    newest_entry_at: datetime | None = None
    entries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    checks: int = 0
    polls: int = 0


class ChangeFeed:
    """The feed's state and its one step (``poll``); the runtime's poller calls it."""

    def __init__(
        self,
        cycle: CycleService,
        snapshots: SnapshotStore,
        reader: AuditLogReader,
        attributor: Attributor | None = None,
        *,
        clock: Clock = utc_now,
        check_timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.cycle, self.snapshots, self.reader = cycle, snapshots, reader
        self.attributor, self.clock, self.check_timeout = attributor, clock, check_timeout
        self.refused = False  # a 401/403: off until restart
        self.errors = 0  # failed polls in a row
        self._seen = SeenIds()
        self._last_before: datetime | None = None
        self._newest: datetime | None = None
        self._waiting: set[str] = set()  # audiences whose check met a busy cycle
        self._lock = threading.Lock()
        self._stats = FeedStats()
        self._loaded = False

    # -- what others ask ------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.snapshots.current.settings

    def healthy(self) -> bool:
        on = self.settings.cloudflare_feed != FEED_OFF
        return on and not self.refused and self.errors < DOWN_AFTER_ERRORS

    def full_interval_seconds(self) -> int:
        """Seconds between full listings now: the safety net while the feed is healthy."""
        return full_interval_seconds(self.settings, self.healthy())

    def stats(self) -> FeedStats:
        with self._lock:
            on = self.settings.cloudflare_feed != FEED_OFF
            up = None if not on or self._stats.polls == 0 else self.healthy()
            return FeedStats(
                on, up, self._newest, dict(self._stats.entries), self._stats.checks,
                self._stats.polls,
            )  # fmt: skip

    # -- one poll -------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """One listing of the log, then a check of each audience it touched; the audiences
        checked are answered."""
        if self.settings.cloudflare_feed == FEED_OFF or self.refused:
            return []
        groups = self._groups()
        now = self.clock()
        self._load(groups, now)
        overlap = timedelta(seconds=self.settings.feed_overlap_seconds)
        window = poll_window(self._newest, self._last_before or now, now, overlap)
        try:
            # Up to a little past now, as attribution reads: an entry stamped by a clock a
            # little ahead of ours is read now rather than never.
            listing = self.reader.group_changes(window.since, window.before + SKEW, groups)
        except RateLimited as exc:
            log.info("audit log not polled: %s", exc)
            return []
        except CloudflareError as exc:
            self._failed(exc)
            return []
        with self._lock:
            self.errors = 0
            self._stats.polls += 1
            self._last_before = now
            self._newest = _later(self._newest, listing.newest)
            self._seen.forget_before(window.since - overlap - SKEW)
        fresh = self._take(listing, window.since, groups, now)
        return self._act(fresh, "poll")

    def take_pushed(self, items: Iterable[object]) -> tuple[int, list[str]]:
        """Entries a Logpush delivery brought, in the log's v1 shape (``cloudflare/logpush``):
        those about an audience's group and not taken before are acted on like polled ones.
        Answers (entries about the audiences' groups, audiences checked)."""
        groups = self._groups()
        changes = [c for item in items if (c := group_change_from_json(item, groups))]
        with self._lock:
            fresh = self._seen.fresh(changes)
            for change in fresh:
                self._newest = _later(self._newest, change.at)
        attributor = self.attributor
        if fresh and attributor is not None:
            fresh = _kept(lambda: attributor.keep(fresh, min(c.at for c in fresh)), fresh)
        return len(changes), self._act(fresh, "logpush")

    # -- plumbing -------------------------------------------------------------------------

    def _groups(self) -> dict[str, str]:
        """The audiences' group ids, from the last check (no Vault read per poll)."""
        checks = self.snapshots.current.checks
        return {c.audience.group_id: name for name, c in checks.items() if c.audience.group_id}

    def _load(self, groups: dict[str, str], now: datetime) -> None:
        """Once: the entries an earlier process took within the overlap, so that a restart
        does not act on them twice."""
        if self._loaded or self.attributor is None or not groups:
            return
        since = now - timedelta(seconds=self.settings.feed_overlap_seconds) * 2 - SKEW
        try:
            _, changes = self.attributor.vault.attribution_cache(groups.keys(), since)
        except VaultError as exc:
            log.warning("entries already taken not read back yet: %s", exc)
            return
        with self._lock:
            self._seen.remember(changes)
        self._loaded = True

    def _take(
        self, listing: AuditListing, since: datetime, groups: dict[str, str], now: datetime
    ) -> list[GroupChange]:
        with self._lock:
            fresh = self._seen.fresh(listing.changes)
        attributor = self.attributor
        if attributor is None:
            return fresh
        read = AuditListing(
            fresh, listing.read_until, listing.pages, listing.entries, listing.skipped,
            listing.newest,
        )  # fmt: skip
        return _kept(lambda: attributor.take(read, since, groups.keys(), now), fresh)

    def _act(self, fresh: list[GroupChange], source: str) -> list[str]:
        groups = self._groups()
        with self._lock:
            self._stats.entries[source] += len(fresh)
            # The exporter's own writes need no second look: its sync read the group back.
            touched = audiences_touched([c for c in fresh if c.source != EXPORTER], groups)
            names = sorted(self._waiting.union(touched))
        if not names:
            return []
        log.info("Cloudflare edits seen in the audit log", extra={"audiences": len(names)})
        try:
            self.cycle.check_audiences(names, "feed", timeout=self.check_timeout)
        except Busy:
            with self._lock:
                self._waiting.update(names)  # checked on the next poll
            log.info("feed check deferred: a check or sync is running")
            return []
        except VaultError as exc:
            with self._lock:
                self._waiting.update(names)  # checked on the next poll
            log.warning("feed check failed (tried again at the next poll): %s", exc)
            return []
        with self._lock:
            self._waiting.difference_update(names)
            self._stats.checks += len(names)
        return names

    def _failed(self, exc: CloudflareError) -> None:
        with self._lock:
            self.errors += 1
            self._stats.polls += 1
            errors = self.errors
        if exc.status in (401, 403):
            self.refused = True
            log.warning(
                "change feed off: Cloudflare refused the account audit log (%s); the API token"
                " needs Account Settings Read. Full listings run every check_interval_seconds;"
                " restart once the token has it",
                exc,
            )
        elif errors == DOWN_AFTER_ERRORS:
            log.warning("change feed down after %d failed polls: %s", errors, exc)
        else:
            log.info("audit log poll failed: %s", exc)


def _kept(keep: Callable[[], list[GroupChange]], fresh: list[GroupChange]) -> list[GroupChange]:
    """The entries as attribution classified and kept them; when the Vault refused to keep
    them, as they came: they were taken, so they are acted on now or never (an own write
    among them costs one GET more)."""
    try:
        return keep()
    except VaultError as exc:
        log.warning("audit-log entries not kept for attribution: %s", exc)
        return fresh


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
