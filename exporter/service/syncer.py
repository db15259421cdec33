"""Pushing Vault's membership to each audience's provider: read-modify-write, guarded,
audited, verified. The provider is the one the audience's row names (``providers.py``).

Every attempt (dry runs excepted) leaves an audit row that is written *before* anything is
sent, so a crash between the PUT and its bookkeeping is found and settled on restart
(``recovery.py``). The caller holds the work lock (the cycle service takes it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.provider import CloudflareAccess
from exporter.core.exemptions import exempt_sides
from exporter.core.model import (
    Actual,
    Audience,
    AudienceCheck,
    AutoSync,
    Status,
    SyncOutcome,
    SyncPlan,
    SyncResultKind,
)
from exporter.core.plan import (
    excluded_reason,
    is_address,
    no_account_reason,
    not_address_reason,
)
from exporter.core.provider import (
    CLOUDFLARE_ACCESS,
    RESOURCE_TYPES,
    ProviderError,
    SyncMode,
    VerificationFailed,
    group_noun,
)
from exporter.core.snapshot import Snapshot
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.checker import UnknownAudience
from exporter.service.events import Events, NoEvents
from exporter.service.providers import NoProvider, Providers
from exporter.service.snapshots import SnapshotStore
from exporter.vault.store import AuditEntry, VaultIncomplete, VaultStore

log = logging.getLogger("vault_drift.sync")


class GroupExists(Exception):
    """The audience already has a group."""


class GroupRefused(Exception):
    """The group cannot be created as asked (over Cloudflare's rule limit)."""


ProviderUnavailable = NoProvider  # the audience's provider is unknown or not configured


@dataclass(frozen=True)
class SyncRequest:
    audiences: list[str] | None  # None: every audience in drift
    dry_run: bool = False
    force: bool = False
    trigger: str = "api"  # api | page | cli | auto
    actor: str = "api"
    add_only: bool = False
    remove_only: bool = False  # revoke extra members only (auto-sync remove_only)

    @property
    def mode(self) -> str:
        """What the audit records: full | add_only | remove_only."""
        return "add_only" if self.add_only else "remove_only" if self.remove_only else "full"


class SyncRecorder(Protocol):
    """Records what our own sync's read-back shows, so that it never shows as drift."""

    def record_sync(self, audience: str, actual: Actual, actor: str) -> Snapshot: ...


class Syncer:
    """Plans and applies syncs, and auto-sync after a check. The caller holds the work lock."""

    def __init__(
        self,
        vault: VaultStore,
        cloudflare: CloudflareClient,
        snapshots: SnapshotStore,
        recorder: SyncRecorder,
        *,
        clock: Clock = utc_now,
        events: Events | None = None,
        announcements: Announcements | None = None,
        providers: Providers | None = None,
    ) -> None:
        self.vault, self.cloudflare, self.snapshots = vault, cloudflare, snapshots
        self.recorder, self.clock = recorder, clock
        self.events: Events = events or NoEvents()
        self.announcements = announcements or NO_ANNOUNCEMENTS  # webhook events (outbox)
        # Each audience is written through the provider its row names, never another's.
        self.providers = providers or Providers({CLOUDFLARE_ACCESS: CloudflareAccess(cloudflare)})
        # Audiences whose auto-sync a long rate-limit pause cut short: run again once it ends.
        self._auto_sync_due: set[str] = set()

    def sync(self, request: SyncRequest) -> list[SyncOutcome]:
        return [self._sync_one(a, request) for a in self._targets(request.audiences)]

    def auto_sync(self, mode: AutoSync, audiences: list[str] | None = None) -> list[SyncOutcome]:
        """After a check: heal drifting audiences that nobody is ignoring. Never forced.

        ``audiences`` limits it to the ones a partial check just read (None: every audience).
        An audience whose sync fails while its provider's calls are paused by throttling (a
        pause too long to wait out) is remembered for ``resume_auto_sync``.
        """
        if mode is AutoSync.OFF:
            return []
        snapshot, now = self.snapshots.current, self.clock()
        names = [
            name
            for name, check in snapshot.checks.items()
            if (audiences is None or name in audiences)
            and check.status is Status.DRIFT
            and snapshot.ignore_of(name, now) is None
            and _fixable(check, mode)
        ]
        if not names:
            return []
        request = SyncRequest(
            names,
            trigger="auto",
            actor="auto-sync",
            add_only=mode is AutoSync.ADD_ONLY,
            remove_only=mode is AutoSync.REMOVE_ONLY,
        )
        outcomes = self.sync(request)
        for outcome in outcomes:
            provider = snapshot.checks[outcome.audience].audience.provider
            if self.providers.paused(provider) and outcome.result is SyncResultKind.ERROR:
                self._auto_sync_due.add(outcome.audience)
            else:
                self._auto_sync_due.discard(outcome.audience)
        return outcomes

    def auto_sync_due(self) -> bool:
        """An auto-sync a pause cut short is waiting, and every provider's pause is over."""
        return bool(self._auto_sync_due) and all(p.pause_left() is None for p in self.providers)

    def resume_auto_sync(self) -> list[SyncOutcome]:
        """Once the pause is over, auto-sync the audiences it cut short (not one interval later)."""
        if not self.auto_sync_due():
            return []
        due, self._auto_sync_due = sorted(self._auto_sync_due), set()
        log.info("auto-sync of %d audience(s) again: the rate-limit pause is over", len(due))
        return self.auto_sync(self.snapshots.current.settings.auto_sync, due)

    def _targets(self, names: list[str] | None) -> list[Audience]:
        audiences = self.vault.audiences()
        if names is None:
            drifting = {
                n for n, c in self.snapshots.current.checks.items() if c.status is Status.DRIFT
            }
            return [a for a in audiences if a.audience in drifting]
        known = {a.audience: a for a in audiences}
        unknown = sorted(set(names) - known.keys())
        if unknown:
            raise UnknownAudience(unknown)
        return [known[n] for n in dict.fromkeys(names)]

    def _sync_one(self, audience: Audience, request: SyncRequest) -> SyncOutcome:
        name = audience.audience
        reason = self.providers.why_not(audience.provider)
        if reason is not None:  # nothing is read from or written to any provider for it
            return self._done(request, name, SyncResultKind.ERROR, reason=reason)
        if audience.group_id is None:
            noun = group_noun(audience.provider)
            return self._done(
                request,
                name,
                SyncResultKind.ERROR,
                reason=f"no {noun} yet (pending): create it with POST /iam/drift/groups",
            )
        try:
            plan = self._plan(audience, request)
        except (ProviderError, VaultIncomplete) as exc:
            return self._done(request, name, SyncResultKind.ERROR, reason=str(exc))
        if request.dry_run:
            result = (
                SyncResultKind.BLOCKED
                if plan.blocked
                else (SyncResultKind.NOOP if plan.is_noop else SyncResultKind.SYNCED)
            )
            reason = _reason(plan.blocked_detail, plan)
            return SyncOutcome(name, result, plan.added, plan.removed, reason, plan.blocked)
        audit_id = self._audit_start(plan, request)
        if plan.blocked:
            return self._finish(
                audit_id, request, plan, SyncResultKind.BLOCKED, _reason(plan.blocked_detail, plan)
            )
        if plan.is_noop:
            return self._finish(audit_id, request, plan, SyncResultKind.NOOP, _reason(None, plan))
        return self._apply(audit_id, audience, plan, request)

    def _plan(self, audience: Audience, request: SyncRequest) -> SyncPlan:
        expected = self.vault.expected_members([audience.audience])[audience.audience]
        if expected.error:
            raise VaultIncomplete(expected.error)
        # Exempt members are neither added nor removed (docs/exemptions.md).
        exemptions = self.snapshots.current.exemptions.get(audience.audience, ())
        keep, leave_out = exempt_sides(exemptions, self.clock())
        mode = SyncMode(request.add_only, request.remove_only, request.force, keep, leave_out)
        # A fresh read of the group, never cached.
        return self.providers.of(audience).plan(audience, expected.members, mode)

    def _apply(
        self, audit_id: int, audience: Audience, plan: SyncPlan, request: SyncRequest
    ) -> SyncOutcome:
        try:
            readback = self.providers.of(audience).apply(plan)
        except ProviderError as exc:
            log.warning("sync of %s failed: %s", audience.audience, exc)
            return self._finish(audit_id, request, plan, SyncResultKind.ERROR, str(exc))
        except VerificationFailed as exc:
            return self._finish(audit_id, request, plan, SyncResultKind.ERROR, str(exc))
        outcome = self._finish(audit_id, request, plan, SyncResultKind.SYNCED, _reason(None, plan))
        self.recorder.record_sync(audience.audience, readback, request.actor)
        return outcome

    def _audit_start(self, plan: SyncPlan, request: SyncRequest) -> int:
        entry = AuditEntry(
            audience=plan.audience,
            action="sync",
            trigger=request.trigger,
            actor=request.actor,
            mode=request.mode,
            forced=request.force,
            group_id=plan.group.id,
            added=plan.added,
            removed=plan.removed,
        )
        return self.vault.start_audit(entry, self.clock())

    def _finish(
        self,
        audit_id: int,
        request: SyncRequest,
        plan: SyncPlan,
        result: SyncResultKind,
        reason: str | None,
    ) -> SyncOutcome:
        blocked = plan.blocked if result is SyncResultKind.BLOCKED else None
        outcome = SyncOutcome(plan.audience, result, plan.added, plan.removed, reason, blocked)
        now = self.clock()
        outbox = self.announcements.of_sync(outcome, request.trigger, request.actor, now)
        self.vault.finish_audit(audit_id, str(result), reason, now, outbox=outbox)
        self.events.synced(request.trigger, str(result), plan.blocked)
        log.info(
            "sync audience=%s result=%s added=%d removed=%d trigger=%s",
            plan.audience,
            result,
            len(plan.added),
            len(plan.removed),
            request.trigger,
        )
        return outcome

    def _done(
        self, request: SyncRequest, name: str, result: SyncResultKind, reason: str
    ) -> SyncOutcome:
        if not request.dry_run:
            self.events.synced(request.trigger, str(result), None)
        return SyncOutcome(name, result, reason=reason)

    # -- groups -----------------------------------------------------------------------

    def create_group(self, name: str, actor: str, trigger: str = "api") -> str:
        """Create the group of a pending audience, in its own provider, from Vault's members.

        ``NoProvider`` when the audience's provider is unknown or not configured: nothing is
        created anywhere (never a Cloudflare group for another provider's audience).
        """
        audience = self._targets([name])[0]
        provider = self.providers.of(audience)
        if audience.group_id is not None:
            raise GroupExists(f"audience {name} already has group {audience.group_id}")
        expected = self.vault.expected_members([name])[name]
        if expected.error:
            raise VaultIncomplete(expected.error)
        # Cloudflare refuses a whole group over one rule that is not an address; a member
        # exempt from being added stays out.
        _, kept_out = exempt_sides(
            self.snapshots.current.exemptions_of(name, self.clock()), self.clock()
        )
        emails = sorted(e for e in expected.members if is_address(e) and e not in kept_out)
        limit = provider.capabilities.member_limit
        if limit is not None and len(emails) > limit:
            raise GroupRefused(f"{len(emails)} members exceed Cloudflare's limit of {limit} rules")
        entry = AuditEntry(name, "create_group", trigger, actor, added=tuple(emails))
        audit_id = self.vault.start_audit(entry, self.clock())
        try:
            group_id, actual = provider.create_group(name, emails)
        except ProviderError as exc:
            self.vault.finish_audit(audit_id, "error", str(exc), self.clock())
            raise
        resource_type = RESOURCE_TYPES[provider.name]
        self.vault.record_group(name, group_id, audit_id, self.clock(), resource_type)
        self.recorder.record_sync(name, actual, actor)
        return group_id


def _fixable(check: AudienceCheck, mode: AutoSync) -> bool:
    """Whether a sync in ``mode`` can change something: an excluded member is beyond any sync,
    and an audience drifting only by those would get a no-op sync, audited, every cycle."""
    removes = mode in (AutoSync.FULL, AutoSync.REMOVE_ONLY)
    adds = mode in (AutoSync.FULL, AutoSync.ADD_ONLY)
    return bool(removes and check.extra) or (
        adds
        and any(not m.excluded and not m.no_account and is_address(m.email) for m in check.missing)
    )


def _reason(detail: str | None, plan: SyncPlan) -> str | None:
    """A guard's detail, then the expected members no sync can fix (excluded in Cloudflare,
    not an email address in Vault, no user in the provider)."""
    notes = (excluded_reason(plan), not_address_reason(plan), no_account_reason(plan))
    parts = [p for p in (detail, *notes) if p]
    return "; ".join(parts) or None


__all__ = [
    "GroupExists",
    "GroupRefused",
    "ProviderUnavailable",
    "SyncRecorder",
    "SyncRequest",
    "Syncer",
]
