"""The pure core of a check: diff, status, episodes, alert levels, ignores.

No I/O and no clock reads: every function takes what it needs, ``now`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from exporter.core.model import (
    Actual,
    AlertLevel,
    Audience,
    AudienceCheck,
    DriftMember,
    DriftMemory,
    Expected,
    Group,
    Ignore,
    Rule,
    Status,
)
from exporter.core.settings import Thresholds
from exporter.core.times import parse_time

MISSING = "missing"
EXTRA = "extra"
RECENT = timedelta(minutes=30)


def email_of(rule: Rule) -> str | None:
    """The lowercased address of an ``email`` rule, None for every other rule."""
    body = rule.get("email") if len(rule) == 1 else None
    if type(body) is dict or isinstance(body, Mapping):  # the exact-type test is the fast path
        address = body.get("email")
        if type(address) is str and address.strip():
            return address.strip().lower()
    return None


def email_members(include: Iterable[Rule]) -> set[str]:
    """Cloudflare's members: the email rules of a group's include list."""
    return {email for rule in include if (email := email_of(rule)) is not None}


def other_rules(include: Iterable[Rule]) -> list[Rule]:
    """Every include rule that is not a member email, verbatim and in order."""
    return [rule for rule in include if email_of(rule) is None]


def diff(expected: Iterable[str], actual: Iterable[str]) -> tuple[list[str], list[str]]:
    """(missing, extra), sorted, comparing emails case-insensitively."""
    want = set(map(str.lower, expected))
    have = set(map(str.lower, actual))
    return sorted(want - have), sorted(have - want)


def evaluate(
    audience: Audience,
    expected: Expected,
    actual: Actual,
    memory: DriftMemory,
    now: datetime,
) -> AudienceCheck:
    """Check one audience: status, drifting members and the memory to persist."""
    error = _error_of(audience, expected, actual)
    if error is not None:
        return _errored(audience, expected, actual, memory, now, error)
    if audience.group_id is None:
        return AudienceCheck(
            audience=audience,
            status=Status.PENDING,
            checked_at=now,
            expected_count=len(expected.members),
            actual_count=0,
            memory=DriftMemory(),
        )
    assert actual.group is not None
    have = actual.emails if actual.emails is not None else email_members(actual.group.include)
    # Both sides arrive lowercased: equal as they are is the common case and costs no copy.
    in_step = expected.members.keys() == have
    missing, extra = ([], []) if in_step else diff(expected.members, have)
    others = tuple(other_rules(actual.group.include))
    if not missing and not extra:
        return AudienceCheck(
            audience=audience,
            status=Status.SYNCED,
            checked_at=now,
            expected_count=len(expected.members),
            actual_count=len(have),
            other_rules=others,
            memory=DriftMemory(),
        )
    first_seen = {
        (kind, email): memory.first_seen.get((kind, email), now)
        for kind, emails in ((MISSING, missing), (EXTRA, extra))
        for email in emails
    }
    return AudienceCheck(
        audience=audience,
        status=Status.DRIFT,
        checked_at=now,
        expected_count=len(expected.members),
        actual_count=len(have),
        missing=tuple(
            DriftMember(e, MISSING, first_seen[(MISSING, e)], parse_time(expected.members[e]))
            for e in missing
        ),
        extra=tuple(DriftMember(e, EXTRA, first_seen[(EXTRA, e)]) for e in extra),
        other_rules=others,
        memory=DriftMemory(drift_since=memory.drift_since or now, first_seen=first_seen),
    )


def _error_of(audience: Audience, expected: Expected, actual: Actual) -> str | None:
    if expected.error is not None:
        return expected.error
    if audience.group_id is None:
        return None
    if actual.error is not None:
        return actual.error
    if actual.group is None:
        return f"Cloudflare group {audience.group_id} not found"
    return None


def _errored(
    audience: Audience,
    expected: Expected,
    actual: Actual,
    memory: DriftMemory,
    now: datetime,
    message: str,
) -> AudienceCheck:
    """An incomplete check: never synced or drift; the open episode, if any, is kept as is."""
    kept = DriftMemory(
        drift_since=memory.drift_since,
        first_seen=memory.first_seen,
        consecutive_errors=memory.consecutive_errors + 1,
        error_since=memory.error_since or now,
    )
    group = actual.group
    have = actual.emails if actual.emails is not None else None
    return AudienceCheck(
        audience=audience,
        status=Status.ERROR,
        checked_at=now,
        expected_count=len(expected.members) if expected.error is None else 0,
        actual_count=len(have)
        if have is not None
        else (len(email_members(group.include)) if group else 0),
        error_message=message,
        memory=kept,
    )


def alert_level(
    status: Status, drift_since: datetime | None, now: datetime, thresholds: Thresholds
) -> AlertLevel:
    """Seed's levels: info while young, warning past the warning threshold, then critical."""
    if status is not Status.DRIFT or drift_since is None:
        return AlertLevel.NONE
    age = (now - drift_since).total_seconds()
    if age >= thresholds.critical_seconds:
        return AlertLevel.CRITICAL
    if age >= thresholds.warning_seconds:
        return AlertLevel.WARNING
    return AlertLevel.INFO


def active_ignore(ignore: Ignore | None, now: datetime) -> Ignore | None:
    """The ignore in force, or None once it has expired."""
    return ignore if ignore is not None and ignore.until > now else None


def hint(member: DriftMember) -> str:
    """A short guess at why a member drifts, shown beside it."""
    if member.kind == MISSING:
        added = member.added_in_vault_at
        if added is not None and member.first_seen_at - added <= RECENT:
            return "added in Vault recently: the push to Cloudflare may not have run yet"
        return "in Vault but not in Cloudflare: push failed or removed by hand"
    return "manually added? in Cloudflare but not in Vault (or removed from Vault)"


def compact(group: Group) -> Actual:
    """Cloudflare's side with member emails extracted and only the other rules kept.

    One pass over the rules (a full check sees a million of them); ``email_of`` decides.
    """
    emails: set[str] = set()
    others: list[Rule] = []
    for rule in group.include:
        email = email_of(rule)
        if email is None:
            others.append(rule)
        else:
            emails.add(email)
    return Actual(
        group=Group(group.id, group.name, others, group.exclude, group.require),
        emails=frozenset(emails),
    )
