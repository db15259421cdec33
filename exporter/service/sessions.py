"""Effective removal: after each check or sync, end the Access sessions of the leavers.

A follower of the cycle (``cycle.py``), inside its lock. Each run:
1. turns the removals the checks recorded since the last run (an extra member gone, whatever
   removed it) and the cycle's own sync removals into leavers (``core/sessions.py``), drops
   those Vault grants again, and persists them as pending revocations with the cursor, in
   one write: recorded before anything is sent;
2. sends the pending ones (oldest first, at most max(5, 10 %) of an audience's members per
   run) through the Cloudflare client, so the same 429 pause and budget apply; a pending one
   that Vault grants again is cancelled, never sent. Failures stay pending for the next run.

A 401/403 means the token lacks "Access: Organizations, Identity Providers, and Groups Write":
one log line, ``vault_drift_session_revoke_up 0``, everything stays pending, checks and syncs
go on (README, "Effective removal").
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient, CloudflareError, RateLimited
from exporter.core.sessions import (
    CANCELLED,
    FAILED,
    OK,
    Leaver,
    SessionRevocation,
    SessionTotals,
    due,
    leavers,
    still_granted,
    unseen_leavers,
)
from exporter.core.snapshot import Snapshot
from exporter.core.webhooks import OutboxEntry, sessions_revoked_event
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.cycle import CycleDone
from exporter.vault.store import VaultStore

log = logging.getLogger("vault_drift.sessions")

DENIED = (401, 403)
PERMISSION = "Access: Organizations, Identity Providers, and Groups Write"


@dataclass
class SessionState:
    """What the session metrics read between runs (replaced whole, never mutated)."""

    totals: SessionTotals = field(default_factory=lambda: SessionTotals({}, {}))
    up: bool | None = None  # None: no call made yet


class SessionRevoker:
    """The cycle's follower that revokes the sessions of leavers; see the module docstring."""

    def __init__(
        self,
        vault: VaultStore,
        cloudflare: CloudflareClient,
        *,
        clock: Clock = utc_now,
        announcements: Announcements = NO_ANNOUNCEMENTS,
    ) -> None:
        self.vault, self.cloudflare, self.clock = vault, cloudflare, clock
        self.announcements = announcements  # sessions.revoked webhooks (docs/webhooks.md)
        self.state = SessionState(vault.session_totals())
        self._cursor: int | None = None
        self._left_read: dict[str, datetime] = {}  # each audience's check whose ``left`` was read

    def after_cycle(self, done: CycleDone) -> None:
        enabled = done.snapshot.settings.revoke_sessions
        self._queue(done, enabled)
        # While a 429 pause runs, nothing is sent (nor counted as an attempt): next run.
        if enabled and self.state.totals.pending and self.cloudflare.pause_left() is None:
            revoked = self._send(done.snapshot)
            for audience, emails in revoked.items():
                done.revoked.setdefault(audience, []).extend(emails)
        self.state = SessionState(self.vault.session_totals(), self.state.up)

    # -- recording ----------------------------------------------------------------------

    def _queue(self, done: CycleDone, enabled: bool) -> None:
        """Leavers since the last run, persisted with the cursor (also when off: the
        removals seen while off are never revoked later)."""
        removed, cursor = self.vault.removed_since_cursor()
        found: list[Leaver] = []
        if enabled:
            namespaces = {
                name: (c.audience.namespace, c.audience.provider)
                for name, c in done.snapshot.checks.items()
            }
            # After a check, its syncs are auto-sync's; after a sync, the trigger says.
            auto = done.scope != "sync" or done.trigger == "auto"
            candidates = leavers(removed, done.synced, auto, namespaces, self.clock())
            candidates += self._unseen(done)
            granted = self._granted(candidates)
            found = [x for x in candidates if (x.audience, x.email) not in granted]
        if found or cursor != self._cursor:
            self.vault.queue_revocations(found, cursor)
            self._cursor = cursor
            if found:
                log.info("%d session revocation(s) recorded", len(found))
                self.state = SessionState(self.vault.session_totals(), self.state.up)

    def _unseen(self, done: CycleDone) -> list[Leaver]:
        """Leavers no check saw extra, from the checks this cycle made (a snapshot keeps the
        other audiences' earlier checks: read once each)."""
        fresh = [
            c
            for name, c in done.snapshot.checks.items()
            if c.left and self._left_read.get(name) != c.checked_at
        ]
        for c in fresh:
            self._left_read[c.audience.audience] = c.checked_at
        return unseen_leavers(fresh)

    def _granted(self, items: Iterable[Leaver | SessionRevocation]) -> set[tuple[str, str]]:
        """The (audience, email) pairs among ``items`` that Vault grants now."""
        keys = {(x.audience, x.email) for x in items}
        if not keys:
            return set()
        expected = self.vault.expected_members(sorted({a for a, _ in keys}))
        granted: dict[str, Collection[str]] = {}
        for audience, members in expected.items():
            if members.error:  # unreadable: nobody is known not to be granted
                granted[audience] = {e for a, e in keys if a == audience}
            else:
                granted[audience] = members.members.keys()
        return still_granted(keys, granted)

    # -- sending ------------------------------------------------------------------------

    def _send(self, snapshot: Snapshot) -> dict[str, list[str]]:
        pending = self.vault.pending_revocations()
        granted = self._granted(pending)
        cancelled = [
            (r, CANCELLED, "granted by Vault again")
            for r in pending
            if (r.audience, r.email) in granted
        ]
        # No session of an exempt member is revoked (docs/exemptions.md).
        now = self.clock()
        for r in pending:
            if (r.audience, r.email) not in granted and snapshot.is_exempt(
                r.audience, r.email, now
            ):
                granted.add((r.audience, r.email))
                cancelled.append((r, CANCELLED, "exempt"))
        if cancelled:
            self.vault.finish_revocations(cancelled, self.clock())
        members = {
            name: max(check.expected_count, check.actual_count)
            for name, check in snapshot.checks.items()
        }
        sendable = [r for r in pending if (r.audience, r.email) not in granted]
        by_audience: dict[str, list[SessionRevocation]] = {}
        for revocation in due(sendable, members):
            by_audience.setdefault(revocation.audience, []).append(revocation)
        revoked: dict[str, list[str]] = {}
        for audience, revocations in by_audience.items():
            ended, go_on = self._send_audience(revocations)
            if ended:
                revoked[audience] = ended
            if not go_on:
                break
        return revoked

    def _send_audience(self, revocations: list[SessionRevocation]) -> tuple[list[str], bool]:
        """One audience's due revocations, their outcomes and webhook events as one write
        (a crash before it leaves them pending: sent again, harmless). Returns the emails
        whose sessions ended, and whether the next audience may go."""
        results: list[tuple[SessionRevocation, str, str | None]] = []
        go_on = True
        for revocation in revocations:
            error, go_on = self._revoke(revocation)
            results.append((revocation, OK if error is None else FAILED, error))
            if not go_on:
                break
        at = self.clock()
        ok = [r for r, result, _ in results if result == OK]
        self.vault.finish_revocations(results, at, self._events(ok, at))
        return [r.email for r in ok], go_on

    def _events(self, revoked: list[SessionRevocation], at: datetime) -> Sequence[OutboxEntry]:
        """``sessions.revoked``, one per reason (docs/webhooks.md)."""
        by_reason: dict[str, list[SessionRevocation]] = {}
        for revocation in revoked:
            by_reason.setdefault(revocation.reason, []).append(revocation)
        public_url = self.announcements.public_url
        events = [
            sessions_revoked_event(
                rs[0].audience,
                rs[0].namespace,
                rs[0].provider,
                [r.email for r in rs],
                reason,
                at,
                public_url,
            )
            for reason, rs in sorted(by_reason.items())
        ]
        return self.announcements.entries(events)

    def _revoke(self, revocation: SessionRevocation) -> tuple[str | None, bool]:
        """Send one: (the error, None when the sessions ended; whether the next may go: not
        after a refused token or a rate-limit pause)."""
        try:
            self.cloudflare.revoke_user(revocation.email)
        except CloudflareError as exc:
            if exc.status in DENIED:
                if self.state.up is not False:
                    log.error(
                        "session revocation refused (%s): the Cloudflare token needs the"
                        " permission %r; revocations stay pending",
                        exc.status,
                        PERMISSION,
                    )
                self.state.up = False
                return str(exc), False
            log.warning("session revocation in %s failed: %s", revocation.audience, exc)
            return str(exc), not isinstance(exc, RateLimited)
        if self.state.up is False:
            log.info("session revocation works again")
        self.state.up = True
        log.info("sessions revoked audience=%s reason=%s", revocation.audience, revocation.reason)
        return None, True
