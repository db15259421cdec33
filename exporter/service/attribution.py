"""Who changed it: drifting members attributed from Cloudflare's account audit log
(docs/design.md, "Attribution").

A check hands its evaluated audiences to ``attach``. Members whose change is still to be
looked up are answered from what was read before (the store's cache: each group's entries
and how far its log was read); only a full cycle may read the log, and then once: one
listing (with its pages) from the earliest stretch still unread to now, for every audience
group at once. Its entries are classified (vault-api's, the exporter's own sync, or manual)
and kept, so that nothing is read twice, across restarts too.

A token without audit-log rights (401/403) turns attribution off for the life of the process
with one log line and ``vault_drift_attribution_up 0``; any other failure is logged and the
next full cycle tries again. Whatever happens, the check goes on with what it found: an
attribution failure never fails a check.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime

from exporter.cloudflare.audit import AuditListing, AuditLogReader
from exporter.cloudflare.wire import CloudflareError, RateLimited
from exporter.core.attribution import (
    PENDING,
    SKEW,
    Coverage,
    GroupChange,
    classify,
    drifting,
    pending_windows,
)
from exporter.core.drift import attribute
from exporter.core.model import AudienceCheck, DriftMember
from exporter.vault.store import VaultError, VaultStore

log = logging.getLogger("vault_drift.attribution")


class Attributor:
    """Attaches ``changed_by`` to drifting members; see the module docstring."""

    def __init__(
        self,
        vault: VaultStore,
        reader: AuditLogReader,
        *,
        vault_api_actors: Collection[str] = (),
    ) -> None:
        self.vault, self.reader = vault, reader
        self.vault_api_actors = frozenset(a.strip().lower() for a in vault_api_actors if a.strip())
        self.enabled = True  # off after a 401/403, until restart
        self.up = True  # False while the last listing failed, and once off
        self.listings = 0  # audit-log listings made (one per full cycle at most)
        self._manual: dict[str, int] | None = None  # by group id, read once then kept
        # What the change feed read (docs/feed.md): kept in memory, folded into what the
        # store says was read, so that attribution never lists a stretch the feed read.
        self._fed: dict[str, Coverage] = {}

    def attach(
        self, checks: list[AudienceCheck], now: datetime, *, may_read: bool
    ) -> list[AudienceCheck]:
        """The checks with what the audit log says of their pending members; ``may_read``
        (a full cycle) allows one listing for what was never read."""
        try:
            return self._attach(checks, now, may_read)
        except VaultError as exc:
            log.warning("attribution skipped: %s", exc)
        except Exception:  # a bug here must not cost the check its result
            log.exception("attribution failed unexpectedly")
        return checks

    def manual_changes(self, checks: Iterable[AudienceCheck]) -> dict[str, int]:
        """``vault_drift_audience_manual_changes_total`` by audience (persisted counts)."""
        if self._manual is None:
            try:
                self._manual = self.vault.manual_change_counts()
            except VaultError as exc:
                log.warning("manual change counts unreadable: %s", exc)
                return {}
        counts = self._manual
        return {c.audience.audience: counts.get(c.audience.group_id or "", 0) for c in checks}

    # -- one cycle ------------------------------------------------------------------------

    def _attach(
        self, checks: list[AudienceCheck], now: datetime, may_read: bool
    ) -> list[AudienceCheck]:
        waiting = [c for c in checks if any(_undecided(m) for m in drifting(c))]
        if not waiting:
            return checks
        needed = pending_windows(waiting, now)  # empty when all are past the log's reach
        coverage: dict[str, Coverage] = {}
        changes: list[GroupChange] = []
        if needed:
            earliest = min(w.since for w in needed.values())
            coverage, changes = self.vault.attribution_cache(needed.keys(), earliest)
            coverage = _joined(coverage, self._fed)
        # What the log was not read for yet (up to now: the rest of a window, a moment after
        # a member was first seen, is read by a later cycle before "no entry" is said).
        unread = {
            g: w
            for g, w in needed.items()
            if g not in coverage or not coverage[g].covers(w.since, min(w.until, now))
        }
        if unread and may_read and self.enabled:
            groups = {c.audience.group_id for c in checks if c.audience.group_id is not None}
            if self._read(unread, coverage, groups, now):
                coverage, changes = self.vault.attribution_cache(needed.keys(), earliest)
                coverage = _joined(coverage, self._fed)
        by_group: dict[str, list[GroupChange]] = {}
        for change in changes:
            by_group.setdefault(change.group_id, []).append(change)
        chosen = {id(c) for c in waiting}
        result = []
        for check in checks:
            if id(check) in chosen:
                group_id = check.audience.group_id or ""
                check = attribute(check, by_group.get(group_id, ()), coverage.get(group_id), now)
            result.append(check)
        return result

    def _read(
        self,
        unread: dict[str, Coverage],
        coverage: dict[str, Coverage],
        groups: set[str],
        now: datetime,
    ) -> bool:
        """One listing from the earliest stretch still unread to now; True when it was kept."""
        since = min(_unread_start(w, coverage.get(g)) for g, w in unread.items())
        try:
            # Up to a little past now: an entry stamped by Cloudflare's clock, a little ahead
            # of ours, is read now rather than never (what was read is said to end at now).
            listing = self.reader.group_changes(since, now + SKEW, groups)
        except RateLimited as exc:
            log.info("audit log not read this cycle: %s", exc)
            return False
        except CloudflareError as exc:
            self.up = False
            if exc.status in (401, 403):
                self.enabled = False
                log.warning(
                    "attribution off: Cloudflare refused the account audit log (%s); the API"
                    " token needs Account Settings Read. Drift detection is unaffected;"
                    " restart once the token has it",
                    exc,
                )
            else:
                log.warning("audit log unreadable, tried again next cycle: %s", exc)
            return False
        finally:
            self.listings += 1
        self.up = True
        classified = self._classified(listing.changes, since)
        until = None if listing.read_until is None else min(listing.read_until, now)
        read = _extended(coverage, groups, since, until)
        self.vault.record_group_changes(classified, read)
        log.info(
            "audit log read",
            extra={
                "since": since.isoformat(),
                "pages": listing.pages,
                "entries": listing.entries,
                "about_groups": len(classified),
                "skipped": listing.skipped,
            },
        )
        return True

    # -- the change feed's entries (docs/feed.md) -------------------------------------------

    def take(
        self, listing: AuditListing, since: datetime, groups: Collection[str], now: datetime
    ) -> list[GroupChange]:
        """A listing the change feed read, of ``groups`` from ``since``: its entries
        classified and kept (one write, only when there are any), and the stretch
        remembered as read. The classified entries are answered."""
        kept = self.keep(listing.changes, since)  # first: a stretch whose entries could
        until = None if listing.read_until is None else min(listing.read_until, now)
        self._fed = _extended(self._fed, set(groups), since, until)  # not be kept is unread
        self.up = True
        return kept

    def keep(self, changes: list[GroupChange], since: datetime) -> list[GroupChange]:
        """Entries from the feed (polled or pushed), classified and persisted."""
        if not changes or not self.enabled:
            return changes
        classified = self._classified(changes, since)
        self.vault.record_group_changes(classified, {})
        return classified

    def _classified(self, changes: list[GroupChange], since: datetime) -> list[GroupChange]:
        if not changes:
            return []
        own = self.vault.own_writes(since - SKEW * 5)
        classified = [replace(c, source=classify(c, self.vault_api_actors, own)) for c in changes]
        if any(c.source == "manual" for c in classified):
            self._manual = None  # read the counts again
        return classified


def _joined(stored: dict[str, Coverage], fed: dict[str, Coverage]) -> dict[str, Coverage]:
    """What the store says was read, joined with what the feed read where they touch; where
    they do not, the later stretch (a window older than it is read again, harmlessly)."""
    result = dict(stored)
    for group_id, recent in fed.items():
        known = result.get(group_id)
        if known is not None and known.until >= recent.since and known.since <= recent.until:
            result[group_id] = Coverage(
                min(known.since, recent.since), max(known.until, recent.until)
            )
        elif known is None or recent.until > known.until:
            result[group_id] = recent
    return result


def _undecided(member: DriftMember) -> bool:
    attribution = member.attribution
    return attribution is None or attribution.outcome == PENDING


def _unread_start(window: Coverage, known: Coverage | None) -> datetime:
    """Where a group's needed stretch starts being unread: after what was read, when what
    was read reaches back far enough."""
    if known is not None and known.since <= window.since and known.until >= window.since:
        return known.until
    return window.since


def _extended(
    coverage: dict[str, Coverage], groups: set[str], since: datetime, until: datetime | None
) -> dict[str, Coverage]:
    """Every audience group's read stretch once ``[since, until]`` was read for all of them
    (joined to what was read before when they touch)."""
    if until is None or until <= since:
        return {}
    result = {}
    for group_id in groups:
        known = coverage.get(group_id)
        if known is not None and known.until >= since and known.since <= until:
            result[group_id] = Coverage(min(known.since, since), max(known.until, until))
        else:
            result[group_id] = Coverage(since, until)
    return result
