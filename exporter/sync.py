"""Pushing Vault's membership to Cloudflare: read-modify-write, guarded, audited, verified.

Every attempt (dry runs excepted) leaves an audit row that is written *before* anything is
sent, so a crash between the PUT and its bookkeeping is found and settled on restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from .cloudflare import CloudflareError
from .drift import compact, email_members
from .engine import Engine, UnknownAudience
from .model import (
    Actual,
    Audience,
    AutoSync,
    Group,
    Status,
    SyncOutcome,
    SyncPlan,
    SyncResultKind,
)
from .plan import RULE_LIMIT, email_rule, plan_sync
from .vault.membership import expected_members, list_audiences
from .vault.operator import AuditEntry, audit_rows, finish_audit, start_audit
from .vault.state import record_sync_time, set_group_id

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


class Syncer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Audiences whose auto-sync a long rate-limit pause cut short: run again once it ends.
        self._auto_sync_due: set[str] = set()

    @property
    def _now(self) -> datetime:
        return self.engine.clock()

    def sync(self, request: SyncRequest, timeout: float | None = None) -> list[SyncOutcome]:
        with self.engine.exclusive(timeout):
            audiences = self._targets(request.audiences)
            outcomes = [self._sync_one(a, request) for a in audiences]
        return outcomes

    def auto_sync(self, mode: AutoSync, audiences: list[str] | None = None) -> list[SyncOutcome]:
        """After a check: heal drifting audiences that nobody is ignoring. Never forced.

        ``audiences`` limits it to the ones a partial check just read (None: every audience).
        An audience whose sync fails while Cloudflare calls are paused by a 429 (a pause too
        long to wait out) is remembered for ``resume_auto_sync``.
        """
        if mode is AutoSync.OFF:
            return []
        with self.engine.exclusive():
            snapshot, now = self.engine.snapshot, self._now
            names = [
                name
                for name, check in snapshot.checks.items()
                if (audiences is None or name in audiences)
                and check.status is Status.DRIFT
                and snapshot.ignore_of(name, now) is None
                and (mode is AutoSync.FULL or check.missing)
            ]
            if not names:
                return []
            request = SyncRequest(
                names, trigger="auto", actor="auto-sync", add_only=mode is AutoSync.ADD_ONLY
            )
            outcomes = self.sync(request)
            paused = self.engine.cloudflare.pause_left() is not None
            for outcome in outcomes:
                if paused and outcome.result is SyncResultKind.ERROR:
                    self._auto_sync_due.add(outcome.audience)
                else:
                    self._auto_sync_due.discard(outcome.audience)
            return outcomes

    def resume_auto_sync(self) -> list[SyncOutcome]:
        """Once the pause is over, auto-sync the audiences it cut short (not one interval later)."""
        if not self._auto_sync_due or self.engine.cloudflare.pause_left() is not None:
            return []
        with self.engine.exclusive():
            due, self._auto_sync_due = sorted(self._auto_sync_due), set()
            log.info("auto-sync of %d audience(s) again: the rate-limit pause is over", len(due))
            return self.auto_sync(self.engine.snapshot.settings.auto_sync, due)

    def _targets(self, names: list[str] | None) -> list[Audience]:
        with self.engine.db.connect() as conn:
            audiences = list_audiences(conn)
        if names is None:
            drifting = {
                n for n, c in self.engine.snapshot.checks.items() if c.status is Status.DRIFT
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
            return SyncOutcome(
                name, result, plan.added, plan.removed, plan.blocked_detail, plan.blocked
            )
        audit_id = self._audit_start(plan, request)
        if plan.blocked:
            return self._finish(
                audit_id, request, plan, SyncResultKind.BLOCKED, plan.blocked_detail
            )
        if plan.is_noop:
            return self._finish(audit_id, request, plan, SyncResultKind.NOOP, None)
        return self._apply(audit_id, audience, plan, request)

    def _plan(self, audience: Audience, request: SyncRequest) -> SyncPlan:
        with self.engine.db.connect() as conn:
            expected = expected_members(conn, [audience.audience])[audience.audience]
        if expected.error:
            raise VaultIncomplete(expected.error)
        assert audience.group_id is not None
        group = self.engine.cloudflare.get_group(audience.group_id)  # fresh read, never cached
        return plan_sync(
            audience.audience,
            group,
            expected.members,
            add_only=request.add_only,
            force=request.force,
        )

    def _apply(
        self, audit_id: int, audience: Audience, plan: SyncPlan, request: SyncRequest
    ) -> SyncOutcome:
        group = plan.group
        wanted = Group(group.id, group.name, plan.new_include, group.exclude, group.require)
        try:
            self.engine.cloudflare.replace_group(wanted)
            readback = self.engine.cloudflare.get_group(group.id)
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
        outcome = self._finish(audit_id, request, plan, SyncResultKind.SYNCED, None)
        self._recheck(audience, compact(readback), request.actor)
        return outcome

    def _recheck(self, audience: Audience, actual: Actual, actor: str) -> None:
        """Record the state the read-back shows, so our own sync never shows up as drift."""
        now = self._now
        with self.engine.db.transaction() as conn:
            record_sync_time(conn, audience.audience, now)
        with self.engine.db.connect() as conn:
            fresh = {a.audience: a for a in list_audiences(conn)}[audience.audience]
            expected = expected_members(conn, [audience.audience])
        checks = self.engine.evaluate_and_record(
            [fresh], expected, {audience.audience: actual}, full=False, closed_by_sync=actor
        )
        merged = dict(self.engine.snapshot.checks)
        merged.update({c.audience.audience: c for c in checks})
        self.engine.publish(checks=merged)

    def _audit_start(self, plan: SyncPlan, request: SyncRequest) -> int:
        entry = AuditEntry(
            audience=plan.audience,
            action="sync",
            trigger=request.trigger,
            actor=request.actor,
            mode="add_only" if request.add_only else "full",
            forced=request.force,
            group_id=plan.group.id,
            added=plan.added,
            removed=plan.removed,
        )
        with self.engine.db.transaction() as conn:
            return start_audit(conn, entry, self._now)

    def _finish(
        self,
        audit_id: int,
        request: SyncRequest,
        plan: SyncPlan,
        result: SyncResultKind,
        reason: str | None,
    ) -> SyncOutcome:
        with self.engine.db.transaction() as conn:
            finish_audit(conn, audit_id, str(result), reason, self._now)
        self.engine.events.synced(request.trigger, str(result), plan.blocked)
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
            self.engine.events.synced(request.trigger, str(result), None)
        return SyncOutcome(name, result, reason=reason)

    # -- groups -----------------------------------------------------------------------

    def create_group(self, name: str, actor: str, trigger: str = "api") -> str:
        """Create the Cloudflare group of a pending audience from Vault's members."""
        with self.engine.exclusive():
            audience = self._targets([name])[0]
            if audience.group_id is not None:
                raise GroupExists(f"audience {name} already has group {audience.group_id}")
            with self.engine.db.connect() as conn:
                expected = expected_members(conn, [name])[name]
            if expected.error:
                raise VaultIncomplete(expected.error)
            emails = sorted(expected.members)
            if len(emails) > RULE_LIMIT:
                raise GroupRefused(
                    f"{len(emails)} members exceed Cloudflare's limit of {RULE_LIMIT} rules"
                )
            entry = AuditEntry(name, "create_group", trigger, actor, added=tuple(emails))
            with self.engine.db.transaction() as conn:
                audit_id = start_audit(conn, entry, self._now)
            try:
                group = self.engine.cloudflare.create_group(name, [email_rule(e) for e in emails])
            except CloudflareError as exc:
                with self.engine.db.transaction() as conn:
                    finish_audit(conn, audit_id, "error", str(exc), self._now)
                raise
            with self.engine.db.transaction() as conn:
                set_group_id(conn, name, group.id, self._now)
                finish_audit(conn, audit_id, "synced", None, self._now, group_id=group.id)
            self._recheck(replace_group_id(audience, group.id), compact(group), actor)
            return group.id

    # -- recovery ---------------------------------------------------------------------

    def settle_interrupted(self, up_to_id: int | None = None) -> int:
        """Audit rows left ``in_progress`` by a crash: read the group back, record the outcome.

        ``up_to_id`` limits it to the rows a previous process left (a later row may belong
        to a sync still running, in this process or in a CLI next to it).
        """
        with self.engine.db.connect() as conn:
            rows = audit_rows(conn, result="in_progress", limit=1000)
        if up_to_id is not None:
            rows = [row for row in rows if row["id"] <= up_to_id]
        settled = 0
        for row in rows:
            try:
                outcome, reason = self._settle(row)
            except CloudflareError as exc:
                log.warning("cannot settle interrupted sync %s yet: %s", row["id"], exc)
                continue
            with self.engine.db.transaction() as conn:
                finish_audit(conn, row["id"], outcome, reason, self._now)
            settled += 1
        return settled

    def _settle(self, row: dict[str, object]) -> tuple[str, str]:
        group_id = row.get("group_id")
        if row["action"] != "sync" or not isinstance(group_id, str):
            return "error", "interrupted by a restart before completion"
        group = self.engine.cloudflare.get_group(group_id)
        have = email_members(group.include)
        added, removed = set(row["added"]), set(row["removed"])  # type: ignore[call-overload]
        if added <= have and not (removed & have):
            return "synced", "interrupted by a restart; the read-back shows the change applied"
        return "error", "interrupted by a restart before the change reached Cloudflare"


def replace_group_id(audience: Audience, group_id: str) -> Audience:
    return Audience(
        audience.audience, audience.namespace, audience.provider, group_id, audience.last_sync_at
    )


__all__ = ["GroupExists", "GroupRefused", "SyncRequest", "Syncer", "VaultIncomplete"]
