"""Sync plans and their safety guards: pure functions over a fresh read of the group."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace

from exporter.core.drift import diff
from exporter.core.exemptions import exempt_target
from exporter.core.model import Group, Rule, SyncPlan
from exporter.core.provider import SyncMode
from exporter.core.rules import email_members, email_of
from exporter.core.wording import EXCLUDED_NOTE, NO_ACCOUNT_NOTE

RULE_LIMIT = 1000  # Cloudflare's per-group limit, over include + exclude + require
MIN_REMOVAL_GUARD = 5
NAMED_IN_REASON = 20  # excluded members a sync's reason names before "and N more"
REMOVAL_GUARD_RATIO = 0.10

EMPTY_SOURCE = "empty_source"
MASS_REMOVAL = "mass_removal"
OVER_RULE_LIMIT = "rule_limit"
BLOCK_REASONS = (EMPTY_SOURCE, MASS_REMOVAL, OVER_RULE_LIMIT)


# What Cloudflare takes as the address of an email rule: a local part, one "@", a domain, no
# white space. Anything else in Vault's email column would make Cloudflare refuse the whole PUT.
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def is_address(email: str) -> bool:
    return _ADDRESS.fullmatch(email) is not None


def email_rule(email: str) -> Rule:
    return {"email": {"email": email}}


def plan_sync(
    audience: str,
    group: Group,
    expected: Collection[str],
    *,
    add_only: bool = False,
    remove_only: bool = False,
    force: bool = False,
    rule_limit: int | None = RULE_LIMIT,
    accounts: Collection[str] | None = None,
    keep: Collection[str] = (),
    leave_out: Collection[str] = (),
) -> SyncPlan:
    """The include list that makes ``group`` match Vault, and whether a guard forbids it.

    Only the diff changes: the email rules of members Vault does not expect are dropped in
    place (never in add-only mode), every other rule stays as Cloudflare has it (value,
    casing, position), and one email rule per member without one is appended (never in
    remove-only mode). ``exclude`` is never edited: expected members it names stay without
    access and are reported. ``rule_limit`` is the provider's per-group limit (None: none);
    ``accounts``, when given, are the only addresses that can be added (the provider's users):
    the others are reported, never sent. ``keep`` and ``leave_out`` are exempt members
    (docs/exemptions.md): one of ``keep`` the group lists is never removed, one of
    ``leave_out`` it does not list is never added.
    """
    listed = email_members(group.include)
    excluded = email_members(group.exclude) if group.exclude else set()
    members = listed - excluded if excluded else listed
    want = exempt_target({e.lower() for e in expected}, listed, keep, leave_out)
    missing, extra = diff(want, listed)
    wanted = [] if remove_only else missing
    added = [e for e in wanted if is_address(e)]
    not_addresses = tuple(e for e in wanted if not is_address(e))
    no_account: tuple[str, ...] = ()
    if accounts is not None:
        no_account = tuple(e for e in added if e not in accounts)
        added = [e for e in added if e in accounts]
    removed = () if add_only else tuple(e for e in extra if e not in excluded)
    dropped = set(removed)
    kept = [r for r in group.include if email_of(r) not in dropped] if dropped else group.include
    new_include = [*kept, *(email_rule(e) for e in added)]
    plan = SyncPlan(
        audience,
        group,
        new_include,
        tuple(added),
        removed,
        excluded=tuple(sorted(want & excluded)),
        not_addresses=not_addresses,
        no_account=no_account,
    )
    blocked = _guard(plan, len(members), len(want), force, rule_limit)
    if blocked is None:
        return plan
    code, detail = blocked
    return replace(plan, blocked=code, blocked_detail=detail)


def excluded_reason(plan: SyncPlan) -> str | None:
    """The words a sync's ``reason`` adds when expected members are excluded in Cloudflare."""
    if not plan.excluded:
        return None
    named = ", ".join(plan.excluded[:NAMED_IN_REASON])
    more = len(plan.excluded) - NAMED_IN_REASON
    tail = f" and {more} more" if more > 0 else ""
    return f"{EXCLUDED_NOTE}: remove the exclusion by hand: {named}{tail}"


def not_address_reason(plan: SyncPlan) -> str | None:
    """The words a sync's ``reason`` adds for Vault members whose email is not an address."""
    if not plan.not_addresses:
        return None
    named = ", ".join(repr(e) for e in plan.not_addresses[:NAMED_IN_REASON])
    more = len(plan.not_addresses) - NAMED_IN_REASON
    tail = f" and {more} more" if more > 0 else ""
    return (
        f"not an email address in Vault, never sent to Cloudflare: fix it in Vault: {named}{tail}"
    )


def no_account_reason(plan: SyncPlan) -> str | None:
    """The words a sync's ``reason`` adds for Vault members the provider has no user for."""
    if not plan.no_account:
        return None
    named = ", ".join(plan.no_account[:NAMED_IN_REASON])
    more = len(plan.no_account) - NAMED_IN_REASON
    tail = f" and {more} more" if more > 0 else ""
    return f"{NO_ACCOUNT_NOTE}, never created (users come from SCIM): {named}{tail}"


def _guard(
    plan: SyncPlan, current: int, expected: int, force: bool, rule_limit: int | None
) -> tuple[str, str] | None:
    group = plan.group
    total_rules = len(plan.new_include) + len(group.exclude) + len(group.require)
    if rule_limit is not None and total_rules > rule_limit:
        return (
            OVER_RULE_LIMIT,
            f"the group would have {total_rules} rules, over Cloudflare's limit of {rule_limit}"
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


def plan_in(
    mode: SyncMode,
    audience: str,
    group: Group,
    expected: Collection[str],
    *,
    rule_limit: int | None = RULE_LIMIT,
    accounts: Collection[str] | None = None,
) -> SyncPlan:
    """``plan_sync`` in a provider's sync mode, with the provider's own limits."""
    return plan_sync(
        audience,
        group,
        expected,
        add_only=mode.add_only,
        remove_only=mode.remove_only,
        force=mode.force,
        keep=mode.keep,
        leave_out=mode.leave_out,
        rule_limit=rule_limit,
        accounts=accounts,
    )
