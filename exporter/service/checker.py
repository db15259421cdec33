"""Checks: read Vault and Cloudflare, evaluate, persist through the store, publish a snapshot."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient, CloudflareError
from exporter.core.drift import evaluate
from exporter.core.exposure import RevocationTotals
from exporter.core.model import Actual, Audience, AudienceCheck, DriftMemory, Expected, Status
from exporter.core.packed import Unpacked, packed_actual
from exporter.core.rules import actual_of
from exporter.core.snapshot import Snapshot
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.attribution import Attributor
from exporter.service.events import Events, NoEvents
from exporter.service.snapshots import SnapshotStore
from exporter.vault.store import CheckRecord, CycleSummary, VaultError, VaultStore

log = logging.getLogger("vault_drift.checker")


class UnknownAudience(LookupError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown audience: {', '.join(names)}")
        self.names = names


@dataclass(frozen=True)
class Cycle:
    """What the history row of a check cycle needs beyond the checks themselves."""

    started: datetime
    trigger: str
    scope: str  # full | partial
    cloudflare_ok: bool


class Checker:
    """Full checks (one paginated listing) and partial ones (one GET per group).

    The caller holds the work lock (``serve``: the cycle service; the CLI runs alone).
    """

    def __init__(
        self,
        vault: VaultStore,
        cloudflare: CloudflareClient,
        snapshots: SnapshotStore,
        *,
        clock: Clock = utc_now,
        events: Events | None = None,
        attribution: Attributor | None = None,
        announcements: Announcements | None = None,
    ) -> None:
        self.vault, self.cloudflare = vault, cloudflare
        self.snapshots, self.clock = snapshots, clock
        self.events: Events = events or NoEvents()
        self.attribution = attribution  # who changed it (docs/attribution.md); None: not wired
        self.announcements = announcements or NO_ANNOUNCEMENTS  # webhook events (outbox)

    def check_all(self, trigger: str = "schedule") -> Snapshot:
        """A full cycle: every audience, Cloudflare read by one paginated listing."""
        return self._check_all(trigger)

    def check_audiences(self, names: list[str], trigger: str = "api") -> Snapshot:
        """A partial cycle: only these audiences, one direct GET per group.

        Vault unreadable: those audiences are ``error`` (and the Vault source down), and the
        ``VaultError`` goes on to the caller (the API answers 503).
        """
        try:
            return self._check_some(names, trigger)
        except VaultError as exc:
            self._vault_down(time.monotonic(), str(exc), names, scope="partial")
            raise

    def record_sync(self, audience: str, actual: Actual, actor: str) -> Snapshot:
        """After our own sync: record what the read-back shows, so it never shows as drift.

        The caller holds the lock. The audience's last successful sync is recorded with it.
        """
        now = self.clock()
        fresh = {a.audience: a for a in self.vault.audiences()}[audience]
        expected = self.vault.expected_members([audience])
        checks = self._evaluate_and_record(
            [replace(fresh, last_sync_at=now)],
            expected,
            {audience: actual},
            closed_by_sync=actor,
            synced_at=now,
        )
        return self.snapshots.merge(checks, revocations=self._revocations(checks))

    # -- cycles -----------------------------------------------------------------------

    def _check_all(self, trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        try:
            with self._phase("full", "vault"):
                audiences = self.vault.audiences()
                settings = self.vault.settings()
            # Cloudflare's listing (network, JSON) runs beside Vault's query (SQLite
            # releases the GIL): the cycle costs the longer of the two, not their sum.
            with ThreadPoolExecutor(1, thread_name_prefix="cf-listing") as pool:
                listing = pool.submit(self._timed_listing, audiences)
                try:
                    with self._phase("full", "vault"):
                        expected = self.vault.expected_members([a.audience for a in audiences])
                finally:
                    actual, listing_error = listing.result()
        except VaultError as exc:
            return self._vault_down(t0, str(exc))
        cloudflare_ok = listing_error is None
        cycle = Cycle(started, trigger, "full", cloudflare_ok)
        with self._phase("full", "record"):
            checks = self._evaluate_and_record(audiences, expected, actual, cycle=cycle, full=True)
        finished = self.clock()
        self.events.checked("full", cloudflare_ok, time.monotonic() - t0)
        previous = self.snapshots.current
        cycle_error = None if cloudflare_ok else f"Cloudflare listing failed: {listing_error}"
        return self.snapshots.publish(
            Snapshot(
                checks={c.audience.audience: c for c in checks},
                settings=settings,
                ignores=self.vault.ignores(),
                last_check_at=finished,
                last_success_at=finished if cloudflare_ok else previous.last_success_at,
                vault_up=True,
                cloudflare_up=cloudflare_ok,
                cycle_error=cycle_error,
                # Read back whole: revocations a one-shot `check` or `sync` recorded count too.
                revocations=self.vault.revocation_totals(),
                manual_changes=self._manual_changes(checks),
                attribution_up=self.attribution.up if self.attribution else None,
            )
        )

    def _manual_changes(self, checks: list[AudienceCheck]) -> dict[str, int]:
        return self.attribution.manual_changes(checks) if self.attribution else {}

    def _check_some(self, names: list[str], trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        wanted = set(names)
        with self._phase("partial", "vault"):
            audiences = [a for a in self.vault.audiences() if a.audience in wanted]
            unknown = sorted(wanted - {a.audience for a in audiences})
            if unknown:
                raise UnknownAudience(unknown)
            expected = self.vault.expected_members([a.audience for a in audiences])
        with self._phase("partial", "cloudflare"):
            actual = {a.audience: self._get_actual(a) for a in audiences if a.group_id is not None}
        ok = not any(a.error for a in actual.values())
        cycle = Cycle(started, trigger, "partial", ok)
        with self._phase("partial", "record"):
            checks = self._evaluate_and_record(audiences, expected, actual, cycle=cycle)
        self.events.checked("partial", ok, time.monotonic() - t0)
        return self.snapshots.merge(
            checks,
            ignores=self.vault.ignores(),
            last_check_at=self.clock(),
            revocations=self._revocations(checks),
            vault_up=True,  # it was read: a Vault that came back is up again
        )

    def _revocations(self, checks: list[AudienceCheck]) -> RevocationTotals | None:
        """The histogram's totals, read again only when these checks recorded a revocation."""
        return self.vault.revocation_totals() if any(c.revoked for c in checks) else None

    @contextmanager
    def _phase(self, scope: str, phase: str) -> Iterator[None]:
        """Time one phase of a check for the phase histogram (also when it fails)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.events.phase(scope, phase, time.monotonic() - t0)

    def _timed_listing(self, audiences: list[Audience]) -> tuple[Mapping[str, Actual], str | None]:
        with self._phase("full", "cloudflare"):
            return self._list_actual(audiences)

    def _list_actual(self, audiences: list[Audience]) -> tuple[Mapping[str, Actual], str | None]:
        """Every group by one paginated listing, each kept packed until it is evaluated.

        The second value is why the listing failed (None when it completed).
        """
        wanted = {a.group_id: a.audience for a in audiences if a.group_id is not None}
        if not wanted:
            return {}, None
        found: dict[str, Callable[[], Actual]] = {}
        try:
            for group in self.cloudflare.iter_groups():
                if group.id in wanted:
                    found[wanted[group.id]] = packed_actual(actual_of(group))
        except CloudflareError as exc:
            log.warning("cloudflare listing failed: %s", exc)
            return {name: Actual(error=str(exc)) for name in wanted.values()}, str(exc)
        for audience in audiences:  # absent from the listing: ask for it directly, once
            if audience.group_id is not None and audience.audience not in found:
                found[audience.audience] = packed_actual(self._get_actual(audience))
        return Unpacked(found), None

    def _get_actual(self, audience: Audience) -> Actual:
        assert audience.group_id is not None
        try:
            return actual_of(self.cloudflare.get_group(audience.group_id))
        except CloudflareError as exc:
            if exc.status == 404:
                return Actual()
            return Actual(error=str(exc))

    def _evaluate_and_record(
        self,
        audiences: list[Audience],
        expected: Mapping[str, Expected],
        actual: Mapping[str, Actual],
        *,
        cycle: Cycle | None = None,
        full: bool = False,
        closed_by_sync: str | None = None,
        synced_at: datetime | None = None,
    ) -> list[AudienceCheck]:
        """Evaluate, then persist the checks with the cycle's history row as one write.

        Each audience's two sides are read once, evaluated and dropped: with packed sides
        (a full check) only one audience's members are ever unpacked at a time.
        """
        at = self.clock()
        memories = self.vault.memories()
        checks = [
            evaluate(
                a,
                expected.get(a.audience, Expected()),
                actual.get(a.audience, Actual()),
                memories.get(a.audience, DriftMemory()),
                at,
            )
            for a in audiences
        ]
        if self.attribution is not None:  # a full cycle may read the audit log, once
            checks = self.attribution.attach(checks, at, may_read=full)
        retention = timedelta(days=self.snapshots.current.settings.history_retention_days)
        self.vault.record_checks(
            CheckRecord(
                checks=checks,
                previous=memories,
                at=at,
                closed_by_sync=closed_by_sync,
                present=[a.audience for a in audiences] if full else None,
                cycle=self._summary(cycle, checks) if cycle else None,
                prune_before=self.clock() - retention if full else None,
                synced_at=synced_at,
                outbox=self.announcements.of_checks(checks, memories, at, closed_by_sync),
            )
        )
        return checks

    def _summary(self, cycle: Cycle, checks: list[AudienceCheck]) -> CycleSummary:
        counts: dict[str, int] = {str(s): 0 for s in Status}
        for check in checks:
            counts[str(check.status)] += 1
        finished = self.clock()
        return CycleSummary(
            cycle.started, finished, cycle.trigger, cycle.scope, True, cycle.cloudflare_ok, counts
        )

    def _vault_down(
        self, t0: float, message: str, names: list[str] | None = None, scope: str = "full"
    ) -> Snapshot:
        """Vault unreadable: every known audience (or those named) is in error; nothing is
        guessed."""
        log.error("%s", message)
        now = self.clock()
        previous = self.snapshots.current
        checks = {
            name: replace(
                check,
                status=Status.ERROR,
                error_message=message,
                checked_at=now,
                missing=(),
                extra=(),
                revoked=(),
            )
            for name, check in previous.checks.items()
            if names is None or name in names
        }
        self.events.checked(scope, False, time.monotonic() - t0)
        if names is not None:
            return self.snapshots.publish(
                replace(
                    previous,
                    checks={**previous.checks, **checks},
                    last_check_at=now,
                    vault_up=False,
                )
            )
        return self.snapshots.publish(
            replace(previous, checks=checks, last_check_at=now, vault_up=False, cycle_error=message)
        )
