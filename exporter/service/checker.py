"""Checks: read Vault and Cloudflare, evaluate, persist through the store, publish a snapshot."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.provider import CloudflareAccess
from exporter.core.drift import evaluate
from exporter.core.exemptions import ENDED_LOOKBACK, Exemption
from exporter.core.exposure import RevocationTotals
from exporter.core.model import Actual, Audience, AudienceCheck, DriftMemory, Expected, Status
from exporter.core.provider import CAPABILITIES, CLOUDFLARE_ACCESS, Listing
from exporter.core.snapshot import Snapshot
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.attribution import Attributor
from exporter.service.events import Events, NoEvents
from exporter.service.providers import Providers, merged
from exporter.service.snapshots import SnapshotStore
from exporter.vault.store import CheckReads, CheckRecord, CycleSummary, VaultError, VaultStore

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
    """Full checks (each provider read as cheaply as it allows: Cloudflare by one paginated
    listing) and partial ones (each group read directly).

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
        providers: Providers | None = None,
    ) -> None:
        self.vault, self.cloudflare = vault, cloudflare
        # Each audience is read through the provider its row names, never another's.
        self.providers = providers or Providers({CLOUDFLARE_ACCESS: CloudflareAccess(cloudflare)})
        self.provider_up: dict[str, bool] = {}  # the last full read of each provider
        self.snapshots, self.clock = snapshots, clock
        self.events: Events = events or NoEvents()
        self.attribution = attribution  # who changed it (docs/attribution.md); None: not wired
        self.announcements = announcements or NO_ANNOUNCEMENTS  # webhook events (outbox)

    def check_all(self, trigger: str = "schedule") -> Snapshot:
        """A full cycle: every audience, each provider read once for all its audiences."""
        return self._check_all(trigger)

    def check_audiences(self, names: list[str], trigger: str = "api") -> Snapshot:
        """A partial cycle: only these audiences, each group read directly.

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
        reads = self.vault.check_reads([audience], now - ENDED_LOOKBACK)
        fresh = {a.audience: a for a in reads.audiences()}[audience]
        expected = reads.expected_members([audience])
        checks = self._evaluate_and_record(
            [replace(fresh, last_sync_at=now)],
            expected,
            {audience: actual},
            reads,
            closed_by_sync=actor,
            synced_at=now,
        )
        return self.snapshots.merge(checks, revocations=self._revocations(checks))

    # -- cycles -----------------------------------------------------------------------

    def _check_all(self, trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        decided = self.snapshots.decided
        try:
            with self._phase("full", "vault"):
                reads = self.vault.check_reads(None, started - ENDED_LOOKBACK)
                audiences = reads.audiences()
                settings = reads.settings()
            # The providers' reads (network, JSON) run beside Vault's query (SQLite releases
            # the GIL): the cycle costs the longest of them, not their sum.
            served, refused = self.providers.split(audiences)
            with ThreadPoolExecutor(
                max(len(served), 1), thread_name_prefix="provider-read"
            ) as pool:
                listed = {
                    name: pool.submit(self._timed_listing, name, members)
                    for name, members in served.items()
                }
                try:
                    with self._phase("full", "vault"):
                        expected = reads.expected_members([a.audience for a in audiences])
                finally:
                    listings = {name: read.result() for name, read in listed.items()}
        except VaultError as exc:
            return self._vault_down(t0, str(exc))
        self.provider_up = {name: listing.error is None for name, listing in listings.items()}
        actual = merged(listings, refused)
        cloudflare = listings.get(CLOUDFLARE_ACCESS)
        listing_error = cloudflare.error if cloudflare is not None else None
        cloudflare_ok = listing_error is None
        cycle = Cycle(started, trigger, "full", cloudflare_ok)
        with self._phase("full", "record"):
            checks = self._evaluate_and_record(
                audiences, expected, actual, reads, cycle=cycle, full=True
            )
        finished = self.clock()
        self.events.checked("full", cloudflare_ok, time.monotonic() - t0)
        previous = self.snapshots.current
        cycle_error = None if cloudflare_ok else f"Cloudflare listing failed: {listing_error}"
        return self.snapshots.publish(
            Snapshot(
                checks={c.audience.audience: c for c in checks},
                settings=settings,
                ignores=reads.ignores(),
                last_check_at=finished,
                last_success_at=finished if cloudflare_ok else previous.last_success_at,
                vault_up=True,
                cloudflare_up=cloudflare_ok,
                providers_up={
                    name: up for name, up in self.provider_up.items() if name != CLOUDFLARE_ACCESS
                },
                cycle_error=cycle_error,
                # Read whole: revocations a one-shot `check` or `sync` recorded count too.
                revocations=self._revocations(checks) or reads.revocation_totals(),
                manual_changes=self._manual_changes(checks),
                attribution_up=self.attribution.up if self.attribution else None,
                exemptions=previous.exemptions,  # as the evaluation read them
            ),
            decided=decided,
        )

    def _manual_changes(self, checks: list[AudienceCheck]) -> dict[str, int]:
        return self.attribution.manual_changes(checks) if self.attribution else {}

    def _check_some(self, names: list[str], trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        decided = self.snapshots.decided
        wanted = set(names)
        with self._phase("partial", "vault"):
            reads = self.vault.check_reads(sorted(wanted), started - ENDED_LOOKBACK)
            audiences = [a for a in reads.audiences() if a.audience in wanted]
            unknown = sorted(wanted - {a.audience for a in audiences})
            if unknown:
                raise UnknownAudience(unknown)
            expected = reads.expected_members([a.audience for a in audiences])
        with self._phase("partial", "cloudflare"):
            actual = {a.audience: self._get_actual(a) for a in audiences}
        ok = not any(actual[a.audience].error for a in audiences if a.provider == CLOUDFLARE_ACCESS)
        cycle = Cycle(started, trigger, "partial", ok)
        with self._phase("partial", "record"):
            checks = self._evaluate_and_record(audiences, expected, actual, reads, cycle=cycle)
        self.events.checked("partial", ok, time.monotonic() - t0)
        return self.snapshots.merge(
            checks,
            ignores=reads.ignores(),
            last_check_at=self.clock(),
            revocations=self._revocations(checks),
            vault_up=True,  # it was read: a Vault that came back is up again
            decided=decided,
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

    def _timed_listing(self, name: str, audiences: list[Audience]) -> Listing:
        # "cloudflare" is the phase label dashboards know; other providers are named.
        phase = "cloudflare" if name == CLOUDFLARE_ACCESS else name
        with self._phase("full", phase):
            provider = self.providers.get(name)
            assert provider is not None  # split() served only available providers
            return provider.actual_members(audiences)

    def _get_actual(self, audience: Audience) -> Actual:
        """One audience read directly; without a provider, an error saying why (even a
        pending audience: nothing could create its group)."""
        reason = self.providers.why_not(audience.provider)
        if reason is not None:
            return Actual(error=reason)
        if audience.group_id is None:
            return Actual()
        return self.providers.of(audience).actual_of(audience)

    def _evaluate_and_record(
        self,
        audiences: list[Audience],
        expected: Mapping[str, Expected],
        actual: Mapping[str, Actual],
        reads: CheckReads,
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
        memories = reads.memories()
        exemptions = self._exemptions(at, reads)
        current = self.snapshots.current
        revoking = reads.settings().revoke_sessions
        checks = [
            evaluate(
                a,
                expected.get(a.audience, Expected()),
                actual.get(a.audience, Actual()),
                memories.get(a.audience, DriftMemory()),
                at,
                exemptions.get(a.audience, ()),
                held_before=_held(current.checks.get(a.audience)),
                track_held=revoking and _ends_sessions(a),
            )
            for a in audiences
        ]
        if self.attribution is not None:  # a full cycle may read the audit log, once
            checks = self._attributed(checks, at, full)
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

    def _attributed(
        self, checks: list[AudienceCheck], at: datetime, full: bool
    ) -> list[AudienceCheck]:
        """Only Cloudflare's audit log says who changed a group: audiences of a provider
        without attribution (AWS) are left as they are (docs/aws.md)."""
        assert self.attribution is not None

        def able(check: AudienceCheck) -> bool:
            found = CAPABILITIES.get(check.audience.provider)
            return found is not None and found.attribution

        chosen = [c for c in checks if able(c)]
        if len(chosen) == len(checks):
            return self.attribution.attach(checks, at, may_read=full)
        attached = iter(self.attribution.attach(chosen, at, may_read=full))
        return [next(attached) if able(c) else c for c in checks]

    def _exemptions(self, at: datetime, reads: CheckReads) -> dict[str, tuple[Exemption, ...]]:
        """The exemptions a check applies (and those recently ended, which date a drift that
        comes back); the open ones are published with the snapshot."""
        read = reads.exemptions(at - ENDED_LOOKBACK)
        self.snapshots.set_exemptions(
            {
                audience: still
                for audience, rows in read.items()
                if (still := tuple(e for e in rows if e.ended_at is None))
            }
        )
        return read

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
                left=(),
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


def _held(previous: AudienceCheck | None) -> str | None:
    return previous.held if previous is not None else None


def _ends_sessions(audience: Audience) -> bool:
    found = CAPABILITIES.get(audience.provider)
    return found is not None and found.session_revocation
