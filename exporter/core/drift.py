"""The pure core of a check: diff, status, episodes, alert levels, ignores.

No I/O and no clock reads: every function takes what it needs, ``now`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from exporter.core.attribution import (
    PENDING,
    VAULT,
    Coverage,
    GroupChange,
    attribution_words,
    first_attribution,
    resolve,
)
from exporter.core.exposure import closed_seconds, revocations
from exporter.core.model import (
    Actual,
    AlertLevel,
    Attribution,
    Audience,
    AudienceCheck,
    DriftMember,
    DriftMemory,
    Expected,
    Group,
    Ignore,
    OtherRule,
    Rule,
    Status,
)
from exporter.core.settings import Levels, Thresholds
from exporter.core.times import parse_time

MISSING = "missing"
EXTRA = "extra"
RECENT = timedelta(minutes=30)
EXCLUDED_NOTE = "excluded in Cloudflare"


def email_of(rule: Rule) -> str | None:
    """The lowercased address of an ``email`` rule, None for every other rule."""
    body = rule.get("email") if len(rule) == 1 else None
    if type(body) is dict or isinstance(body, Mapping):  # the exact-type test is the fast path
        address = body.get("email")
        if type(address) is str and address.strip():
            return address.strip().lower()
    return None


def domain_of(rule: Rule) -> str | None:
    """The lowercased domain of an ``email_domain`` rule, None for every other rule."""
    body = rule.get("email_domain") if len(rule) == 1 else None
    if isinstance(body, Mapping):
        domain = body.get("domain")
        if type(domain) is str and domain.strip():
            return domain.strip().lower()
    return None


def email_members(include: Iterable[Rule]) -> set[str]:
    """The addresses of a list's email rules (of include: members, unless excluded)."""
    return {email for rule in include if (email := email_of(rule)) is not None}


def other_rules(include: Iterable[Rule]) -> list[Rule]:
    """Every include rule that is not a member email, verbatim and in order."""
    return [rule for rule in include if email_of(rule) is None]


def rules_beside_members(group: Group) -> tuple[OtherRule, ...]:
    """What the document shows as "other rules": include's non-email rules, then every rule
    of exclude and of require, each marked with its list."""
    return (
        *(OtherRule("include", rule) for rule in other_rules(group.include)),
        *(OtherRule("exclude", rule) for rule in group.exclude),
        *(OtherRule("require", rule) for rule in group.require),
    )


def members_of(actual: Actual) -> tuple[Set[str], set[str]]:
    """(members, excluded): include's email addresses minus those an exclude email rule names.

    Exclusions are rare: without any, the include addresses are returned as they are.
    """
    assert actual.group is not None
    group = actual.group
    have = actual.emails if actual.emails is not None else email_members(group.include)
    excluded = email_members(group.exclude) if group.exclude else set()
    if excluded and not have.isdisjoint(excluded):
        have = have - excluded
    return have, excluded


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
        # No group read: drifting members are forgotten where they were last seen.
        return AudienceCheck(
            audience=audience,
            status=Status.PENDING,
            checked_at=now,
            expected_count=len(expected.members),
            actual_count=0,
            memory=DriftMemory(closed=closed_seconds(memory, {}, memory.observed_at)),
        )
    assert actual.group is not None
    have, excluded = members_of(actual)
    # Both sides arrive lowercased: equal as they are is the common case and costs no copy.
    in_step = expected.members.keys() == have
    missing, extra = ([], []) if in_step else diff(expected.members, have)
    others = rules_beside_members(actual.group)
    if not missing and not extra:
        return AudienceCheck(
            audience=audience,
            status=Status.SYNCED,
            checked_at=now,
            expected_count=len(expected.members),
            actual_count=len(have),
            other_rules=others,
            memory=DriftMemory(observed_at=now, closed=closed_seconds(memory, {}, now)),
            revoked=revocations(audience, memory, {}, now),
        )
    first_seen = {
        (kind, email): memory.first_seen.get((kind, email), now)
        for kind, emails in ((MISSING, missing), (EXTRA, extra))
        for email in emails
    }
    attributions = _attributions(first_seen, memory, expected)
    missing_members = _missing_members(
        missing, first_seen, expected, excluded, actual.group, attributions
    )
    extra_members = tuple(
        DriftMember(e, EXTRA, first_seen[(EXTRA, e)], attribution=attributions[(EXTRA, e)])
        for e in extra
    )
    return AudienceCheck(
        audience=audience,
        status=Status.DRIFT,
        checked_at=now,
        expected_count=len(expected.members),
        actual_count=len(have),
        missing=missing_members,
        extra=extra_members,
        other_rules=others,
        memory=DriftMemory(
            drift_since=memory.drift_since or now,
            first_seen=first_seen,
            notes=_notes(missing_members, extra_members),
            attributions=attributions,
            missing_since=(memory.missing_since or now) if missing else None,
            extra_since=(memory.extra_since or now) if extra else None,
            observed_at=now,
            closed=closed_seconds(memory, first_seen, now),
        ),
        revoked=revocations(audience, memory, first_seen, now),
    )


def _missing_members(
    missing: list[str],
    first_seen: dict[tuple[str, str], datetime],
    expected: Expected,
    excluded: set[str],
    group: Group,
    attributions: dict[tuple[str, str], Attribution],
) -> tuple[DriftMember, ...]:
    """Missing members, each with what the group's other rules say about its access."""
    domains = _domains(group.include) if missing else set()
    return tuple(
        DriftMember(
            e,
            MISSING,
            first_seen[(MISSING, e)],
            parse_time(expected.members[e]),
            excluded=e in excluded,
            domain_rule=_covering(e, domains),
            attribution=attributions[(MISSING, e)],
        )
        for e in missing
    )


def _attributions(
    first_seen: dict[tuple[str, str], datetime], memory: DriftMemory, expected: Expected
) -> dict[tuple[str, str], Attribution]:
    """What is known of who made each member drift: kept while it drifts; for a new one,
    to look up after the last check that saw both sides (unless a Vault grant explains it)."""
    known, result = memory.attributions, {}
    for key in first_seen:
        kept = known.get(key)
        if kept is None and key in memory.first_seen:
            kept = Attribution(PENDING)  # drifting since before attributions were kept
        if kept is None:
            kind, email = key
            granted = parse_time(expected.members.get(email)) if kind == MISSING else None
            kept = first_attribution(kind, granted, memory.observed_at)
        result[key] = kept
    return result


def _notes(*members: Iterable[DriftMember]) -> dict[tuple[str, str], str]:
    return {
        (m.kind, m.email): note
        for side in members
        for m in side
        if (note := member_note(m)) is not None
    }


def attribute(
    check: AudienceCheck, changes: Iterable[GroupChange], coverage: Coverage | None, now: datetime
) -> AudienceCheck:
    """The check with what the audit log says about its pending members, in its members and
    in the memory that is persisted (their attribution, and the note reports show)."""
    found = list(changes)
    updates = {
        (m.kind, m.email): result
        for m in (*check.missing, *check.extra)
        if (result := resolve(m, found, coverage, now)) is not None
    }
    if not updates:
        return check

    def update(member: DriftMember) -> DriftMember:
        result = updates.get((member.kind, member.email))
        return member if result is None else replace(member, attribution=result)

    missing, extra = tuple(map(update, check.missing)), tuple(map(update, check.extra))
    memory = replace(
        check.memory,
        attributions={**check.memory.attributions, **updates},
        notes=_notes(missing, extra),
    )
    return replace(check, missing=missing, extra=extra, memory=memory)


def _domains(include: Iterable[Rule]) -> set[str]:
    """The domains of include's email_domain rules, lowercased."""
    return {domain for rule in include if (domain := domain_of(rule)) is not None}


def _covering(email: str, domains: set[str]) -> str | None:
    domain = email.rpartition("@")[2]
    return domain if domain in domains else None


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
    kept = replace(
        memory,
        consecutive_errors=memory.consecutive_errors + 1,
        error_since=memory.error_since or now,
    )
    return AudienceCheck(
        audience=audience,
        status=Status.ERROR,
        checked_at=now,
        expected_count=len(expected.members) if expected.error is None else 0,
        actual_count=len(members_of(actual)[0]) if actual.group is not None else 0,
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


LEVEL_RANK = {AlertLevel.NONE: 0, AlertLevel.INFO: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}


@dataclass(frozen=True)
class Verdict:
    """An audience's alert level and the side that set it (``alert_reason``)."""

    level: AlertLevel = AlertLevel.NONE
    reason: str | None = None  # "missing" | "extra"; None when not drifting


def verdict(
    status: Status,
    missing_since: datetime | None,
    extra_since: datetime | None,
    now: datetime,
    levels: Levels,
) -> Verdict:
    """The higher of the missing side's level and the extra side's, each judged by its own
    thresholds from its own onset. On a tie the extra side (an exposure) is named."""
    if status is not Status.DRIFT:
        return Verdict()
    extra = alert_level(status, extra_since, now, levels.extra)
    missing = alert_level(status, missing_since, now, levels.missing)
    if extra_since is not None and LEVEL_RANK[extra] >= LEVEL_RANK[missing]:
        return Verdict(extra, EXTRA)
    if missing_since is not None:
        return Verdict(missing, MISSING)
    return Verdict()


def active_ignore(ignore: Ignore | None, now: datetime) -> Ignore | None:
    """The ignore in force, or None once it has expired."""
    return ignore if ignore is not None and ignore.until > now else None


def access_note(member: DriftMember) -> str | None:
    """What the group's other rules say about a missing member's access, in words."""
    if member.excluded:
        return EXCLUDED_NOTE
    if member.domain_rule is not None:
        return f"has access through the domain rule {member.domain_rule}"
    return None


def member_note(member: DriftMember) -> str | None:
    """What explains a member in words, as reports show it beside the email (persisted with
    the member): the group's other rules first, then who changed it, with its date."""
    return access_note(member) or attribution_words(member, None)


def hint(member: DriftMember, now: datetime | None = None) -> str:
    """Why a member drifts, shown beside it: what the audit log says (its age measured from
    ``now``), else a short guess."""
    note = access_note(member) or attribution_words(member, now)
    if note is not None:
        return note
    if member.kind == MISSING:
        added = member.added_in_vault_at
        vault = member.attribution is not None and member.attribution.outcome == VAULT
        if vault or (added is not None and member.first_seen_at - added <= RECENT):
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
