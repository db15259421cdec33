"""Pushing Vault's membership to Cloudflare: read-modify-write, guarded, audited, verified.

Every attempt (dry runs excepted) leaves an audit row that is written *before* anything is
sent, so a crash between the PUT and its bookkeeping is found and settled on restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from exporter.cloudflare.client import CloudflareClient, CloudflareError
from exporter.core.drift import compact, email_members
from exporter.core.model import (
    Audience,
    AudienceCheck,
    AutoSync,
    Status,
    SyncOutcome,
    SyncPlan,
    SyncResultKind,
)
from exporter.core.plan import (
    RULE_LIMIT,
    email_rule,
    excluded_reason,
    is_address,
    not_address_reason,
    plan_sync,
)
from exporter.core.snapshot import Snapshot
from exporter.service.checker import Checker, UnknownAudience
from exporter.service.work_lock import Busy
from exporter.vault.store import AuditEntry, VaultStore

log = logging.getLogger("vault_drift.sync")


class GroupExists(Exception):
    """The audience already has a Cloudflare group."""


class GroupRefused(Exception):
    """The group cannot be created as asked (over Cloudflare's rule limit)."""


class VaultIncomplete(Exception):
    """Vault's members of the audience cannot be read completely: nothing is pushed."""


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


class Syncer:
    """Plans and applies syncs; owns "check everything, then sync what drifts"."""

    def __init__(
        self,
        vault: VaultStore,
        cloudflare: CloudflareClient,
        checker: Checker,
    ) -> None:
        self.vault, self.cloudflare, self.checker = vault, cloudflare, checker
        # Audiences whose auto-sync a long rate-limit pause cut short: run again once it ends.
        self._auto_sync_due: set[str] = set()

    @property
    def _now(self) -> datetime:
        return self.checker.clock()

    def sync(self, request: SyncRequest, timeout: float | None = None) -> list[SyncOutcome]:
        with self.checker.lock.hold(timeout):
            audiences = self._targets(request.audiences)
            outcomes = [self._sync_one(a, request) for a in audiences]
        return outcomes

    def check_then_sync(
        self, request: SyncRequest, trigger: str
    ) -> tuple[list[SyncOutcome], str | None]:
        """``--all`` / ``{"all": true}``: a full check first, then every audience in drift.

        When the check could not complete, nobody can be known to drift: nothing is synced,
        each audience it left in ``error`` is an ``error`` result with the check's reason, and
        the second value says why the check failed.
        """
        snapshot = self.checker.check_all(trigger)
        if snapshot.cycle_error:
            unchecked = [
                SyncOutcome(
                    check.audience.audience,
                    SyncResultKind.ERROR,
                    reason=f"not checked: {check.error_message}",
                )
                for check in snapshot.checks.values()
                if check.status is Status.ERROR
            ]
            return unchecked, snapshot.cycle_error
        return self.sync(replace(request, audiences=None)), None

    def check_now(
        self, trigger: str, audiences: list[str] | None = None, timeout: float | None = None
    ) -> Snapshot:
        """A forced or change-driven check (all, or these audiences), then auto-sync of what
        it read when it is on; the answer is the state after both. A busy lock skips the
        auto-sync (the next scheduled check runs it), never the check's answer."""
        checker = self.checker
        if audiences is None:
            snapshot = checker.check_all(trigger, timeout)
        else:
            snapshot = checker.check_audiences(audiences, trigger, timeout)
        try:
            self.auto_sync(snapshot.settings.auto_sync, audiences)
        except Busy:
            log.info("auto-sync after a forced check skipped: another check or sync is running")
        return checker.snapshots.current

    def auto_sync(self, mode: AutoSync, audiences: list[str] | None = None) -> list[SyncOutcome]:
        """After a check: heal drifting audiences that nobody is ignoring. Never forced.

        ``audiences`` limits it to the ones a partial check just read (None: every audience).
        An audience whose sync fails while Cloudflare calls are paused by a 429 (a pause too
        long to wait out) is remembered for ``resume_auto_sync``.
        """
        if mode is AutoSync.OFF:
            return []
        with self.checker.lock.hold():
            snapshot, now = self.checker.snapshots.current, self._now
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
            paused = self.cloudflare.pause_left() is not None
            for outcome in outcomes:
                if paused and outcome.result is SyncResultKind.ERROR:
                    self._auto_sync_due.add(outcome.audience)
                else:
                    self._auto_sync_due.discard(outcome.audience)
            return outcomes

    def resume_auto_sync(self) -> list[SyncOutcome]:
        """Once the pause is over, auto-sync the audiences it cut short (not one interval later)."""
        if not self._auto_sync_due or self.cloudflare.pause_left() is not None:
            return []
        with self.checker.lock.hold():
            due, self._auto_sync_due = sorted(self._auto_sync_due), set()
            log.info("auto-sync of %d audience(s) again: the rate-limit pause is over", len(due))
            return self.auto_sync(self.checker.snapshots.current.settings.auto_sync, due)

    def _targets(self, names: list[str] | None) -> list[Audience]:
        audiences = self.vault.audiences()
        if names is None:
            drifting = {
                n
                for n, c in self.checker.snapshots.current.checks.items()
                if c.status is Status.DRIFT
            }
            return [a for a in audiences if a.audience in drifting]
        known = {a.audience: a for a in audiences}
        unknown = sorted(set(names) - known.keys())
        if unknown:
            raise UnknownAudience(unknown)
        return [known[n] for n in dict.fromkeys(names)]

    def _sync_one(self, audience: Audience, request: SyncRequest) -> SyncOutcome:
        name = audience.audience
        if audience.group_id is None:
            return self._done(
                request,
                name,
                SyncResultKind.ERROR,
                reason=("no Cloudflare group yet (pending): create it with POST /iam/drift/groups"),
            )
        try:
            plan = self._plan(audience, request)
        except (CloudflareError, VaultIncomplete) as exc:
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
        assert audience.group_id is not None
        group = self.cloudflare.get_group(audience.group_id)  # fresh read, never cached
        return plan_sync(
            audience.audience,
            group,
            expected.members,
            add_only=request.add_only,
            remove_only=request.remove_only,
            force=request.force,
        )

    def _apply(
        self, audit_id: int, audience: Audience, plan: SyncPlan, request: SyncRequest
    ) -> SyncOutcome:
        group = plan.group
        wanted = replace(group, include=plan.new_include)  # name, exclude, require, is_default
        try:
            self.cloudflare.replace_group(wanted)
            readback = self.cloudflare.get_group(group.id)
        except CloudflareError as exc:
            log.warning("sync of %s failed: %s", audience.audience, exc)
            return self._finish(audit_id, request, plan, SyncResultKind.ERROR, str(exc))
        if email_members(readback.include) != email_members(plan.new_include):
            return self._finish(
                audit_id,
                request,
                plan,
                SyncResultKind.ERROR,
                "verification failed: the group read back differs from what was sent",
            )
        outcome = self._finish(audit_id, request, plan, SyncResultKind.SYNCED, _reason(None, plan))
        self.checker.record_sync(audience.audience, compact(readback), request.actor)
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
        return self.vault.start_audit(entry, self._now)

    def _finish(
        self,
        audit_id: int,
        request: SyncRequest,
        plan: SyncPlan,
        result: SyncResultKind,
        reason: str | None,
    ) -> SyncOutcome:
        self.vault.finish_audit(audit_id, str(result), reason, self._now)
        self.checker.events.synced(request.trigger, str(result), plan.blocked)
        log.info(
            "sync audience=%s result=%s added=%d removed=%d trigger=%s",
            plan.audience,
            result,
            len(plan.added),
            len(plan.removed),
            request.trigger,
        )
        blocked = plan.blocked if result is SyncResultKind.BLOCKED else None
        return SyncOutcome(plan.audience, result, plan.added, plan.removed, reason, blocked)

    def _done(
        self, request: SyncRequest, name: str, result: SyncResultKind, reason: str
    ) -> SyncOutcome:
        if not request.dry_run:
            self.checker.events.synced(request.trigger, str(result), None)
        return SyncOutcome(name, result, reason=reason)

    # -- groups -----------------------------------------------------------------------

    def create_group(self, name: str, actor: str, trigger: str = "api") -> str:
        """Create the Cloudflare group of a pending audience from Vault's members."""
        with self.checker.lock.hold():
            audience = self._targets([name])[0]
            if audience.group_id is not None:
                raise GroupExists(f"audience {name} already has group {audience.group_id}")
            expected = self.vault.expected_members([name])[name]
            if expected.error:
                raise VaultIncomplete(expected.error)
            # Cloudflare refuses a whole group over one rule that is not an address.
            emails = sorted(e for e in expected.members if is_address(e))
            if len(emails) > RULE_LIMIT:
                raise GroupRefused(
                    f"{len(emails)} members exceed Cloudflare's limit of {RULE_LIMIT} rules"
                )
            entry = AuditEntry(name, "create_group", trigger, actor, added=tuple(emails))
            audit_id = self.vault.start_audit(entry, self._now)
            try:
                group = self.cloudflare.create_group(name, [email_rule(e) for e in emails])
            except CloudflareError as exc:
                self.vault.finish_audit(audit_id, "error", str(exc), self._now)
                raise
            self.vault.record_group(name, group.id, audit_id, self._now)
            self.checker.record_sync(name, compact(group), actor)
            return group.id

    # -- recovery ---------------------------------------------------------------------

    def settle_interrupted(self, up_to_id: int | None = None) -> int:
        """Audit rows left ``in_progress`` by a crash: read the group back, record the outcome.

        ``up_to_id`` limits it to the rows a previous process left (a later row may belong
        to a sync still running, in this process or in a CLI next to it).
        """
        rows = self.vault.audit(result="in_progress", limit=1000)
        if up_to_id is not None:
            rows = [row for row in rows if row["id"] <= up_to_id]
        settled = 0
        for row in rows:
            try:
                outcome, reason = self._settle(row)
            except CloudflareError as exc:
                log.warning("cannot settle interrupted sync %s yet: %s", row["id"], exc)
                continue
            self.vault.finish_audit(row["id"], outcome, reason, self._now)
            settled += 1
        return settled

    def _settle(self, row: dict[str, object]) -> tuple[str, str]:
        group_id = row.get("group_id")
        if row["action"] != "sync" or not isinstance(group_id, str):
            return "error", "interrupted by a restart before completion"
        group = self.cloudflare.get_group(group_id)
        have = email_members(group.include)
        added, removed = set(row["added"]), set(row["removed"])  # type: ignore[call-overload]
        if added <= have and not (removed & have):
            return "synced", "interrupted by a restart; the read-back shows the change applied"
        return "error", "interrupted by a restart before the change reached Cloudflare"


def _fixable(check: AudienceCheck, mode: AutoSync) -> bool:
    """Whether a sync in ``mode`` can change something: an excluded member is beyond any sync,
    and an audience drifting only by those would get a no-op sync, audited, every cycle."""
    removes = mode in (AutoSync.FULL, AutoSync.REMOVE_ONLY)
    adds = mode in (AutoSync.FULL, AutoSync.ADD_ONLY)
    return bool(removes and check.extra) or (
        adds and any(not m.excluded and is_address(m.email) for m in check.missing)
    )


def _reason(detail: str | None, plan: SyncPlan) -> str | None:
    """A guard's detail, then the expected members no sync can fix (excluded in Cloudflare,
    or not an email address in Vault)."""
    parts = [p for p in (detail, excluded_reason(plan), not_address_reason(plan)) if p]
    return "; ".join(parts) or None


__all__ = ["GroupExists", "GroupRefused", "SyncRequest", "Syncer", "VaultIncomplete"]
