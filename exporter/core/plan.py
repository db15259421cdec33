"""Sync plans and their safety guards: pure functions over a fresh read of the group."""

from __future__ import annotations

from collections.abc import Collection

from exporter.core.drift import diff, email_members, email_of
from exporter.core.model import Group, Rule, SyncPlan

RULE_LIMIT = 1000  # Cloudflare's per-group limit, over include + exclude + require
MIN_REMOVAL_GUARD = 5
REMOVAL_GUARD_RATIO = 0.10

EMPTY_SOURCE = "empty_source"
MASS_REMOVAL = "mass_removal"
OVER_RULE_LIMIT = "rule_limit"
BLOCK_REASONS = (EMPTY_SOURCE, MASS_REMOVAL, OVER_RULE_LIMIT)


def email_rule(email: str) -> Rule:
    return {"email": {"email": email}}


def plan_sync(
    audience: str,
    group: Group,
    expected: Collection[str],
    *,
    add_only: bool = False,
    force: bool = False,
) -> SyncPlan:
    """The include list that makes ``group`` match Vault, and whether a guard forbids it.

    Full mode: every non-email rule, unchanged and in order, then one email rule per
    expected member. Add-only mode: the current include untouched, plus the missing members.
    """
    current = email_members(group.include)
    missing, extra = diff(expected, current)
    removed = () if add_only else tuple(extra)
    if add_only:
        new_include = [*group.include, *(email_rule(e) for e in missing)]
    else:
        kept = [rule for rule in group.include if email_of(rule) is None]
        new_include = kept + [email_rule(e) for e in sorted({e.lower() for e in expected})]
    plan = SyncPlan(audience, group, new_include, tuple(missing), removed)
    blocked = _guard(plan, len(current), len(expected), force)
    if blocked is None:
        return plan
    code, detail = blocked
    return SyncPlan(audience, group, new_include, plan.added, removed, code, detail)


def _guard(plan: SyncPlan, current: int, expected: int, force: bool) -> tuple[str, str] | None:
    group = plan.group
    total_rules = len(plan.new_include) + len(group.exclude) + len(group.require)
    if total_rules > RULE_LIMIT:
        return (
            OVER_RULE_LIMIT,
            f"the group would have {total_rules} rules, over Cloudflare's limit of {RULE_LIMIT}"
            " per group (refused even with force)",
        )
    if force:
        return None
    if expected == 0 and current > 0:
        return (
            EMPTY_SOURCE,
            f"Vault lists no member while the group has {current}: refusing to empty it"
            " (Vault outage or bad data?); use force if intended",
        )
    allowed = removal_allowance(current)
    if len(plan.removed) > allowed:
        return (
            MASS_REMOVAL,
            f"the sync would remove {len(plan.removed)} of {current} members, more than the"
            f" {allowed:g} allowed at once (max(5, 10%)); use force if intended",
        )
    return None


def removal_allowance(current_members: int) -> float:
    """How many members one sync may remove from a group without force."""
    return max(MIN_REMOVAL_GUARD, REMOVAL_GUARD_RATIO * current_members)
