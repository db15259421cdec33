"""The pure core of a check: diff, status, episodes (levels in ``levels.py``, Cloudflare's
rules in ``rules.py``, words in ``wording.py``).

No I/O and no clock reads: every function takes what it needs, ``now`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import datetime

from exporter.core.attribution import (
    PENDING,
    Coverage,
    GroupChange,
    first_attribution,
    resolve,
)
from exporter.core.exemptions import Exemption, reopened_at, split_exempt
from exporter.core.exposure import closed_seconds, revocations
from exporter.core.model import (
    Actual,
    Attribution,
    Audience,
    AudienceCheck,
    DriftMember,
    DriftMemory,
    Expected,
    Group,
    MemberKey,
    Side,
    Status,
)
from exporter.core.packed import pack, unpack
from exporter.core.provider import group_noun
from exporter.core.rules import covering, domains_of, members_of, rules_beside_members
from exporter.core.times import parse_time
from exporter.core.wording import member_note

MISSING, EXTRA = Side.MISSING, Side.EXTRA


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
    exemptions: Sequence[Exemption] = (),
    *,
    held_before: str | None = None,
    track_held: bool = False,
) -> AudienceCheck:
    """Check one audience: status, drifting members and the memory to persist.

    ``track_held`` keeps the members Vault grants that the group has (``held``, packed);
    given the previous check's as ``held_before``, those gone since and no longer granted are
    ``left``: leavers whose removal no check saw (README, "Effective removal").

    ``exemptions`` are the audience's (in force, and recently ended): a member an exemption
    in force covers is not drift; one whose exemption ended drifts again from its end.
    """
    error = _error_of(audience, expected, actual)
    if error is not None:
        return replace(_errored(audience, expected, actual, memory, now, error), held=held_before)
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
    missing, extra, covered = split_exempt(missing, extra, exemptions, now)
    exempt = frozenset(covered)
    # An exempt member that was extra has not been revoked: it is still there.
    still = dict.fromkeys(((k, e) for k, e in covered if k == EXTRA), now)
    others = rules_beside_members(actual.group)
    held, left = _held(expected, have, in_step, held_before) if track_held else (None, ())
    if not missing and not extra:
        return AudienceCheck(
            audience=audience,
            status=Status.SYNCED,
            checked_at=now,
            expected_count=len(expected.members),
            actual_count=len(have),
            other_rules=others,
            memory=DriftMemory(observed_at=now, closed=closed_seconds(memory, {}, now)),
            revoked=revocations(audience, memory, still, now),
            exempt=exempt,
            held=held,
            left=left,
        )
    first_seen = {
        (kind, email): reopened_at(exemptions, kind, email, memory.observed_at, now)
        or memory.first_seen.get((kind, email), now)
        for kind, emails in ((MISSING, missing), (EXTRA, extra))
        for email in emails
    }
    attributions = _attributions(first_seen, memory, expected)
    missing_members = _missing_members(
        missing, first_seen, expected, excluded, actual.group, attributions, actual.accounts
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
            drift_since=memory.drift_since or min(first_seen.values()),
            first_seen=first_seen,
            notes=_notes(missing_members, extra_members),
            attributions=attributions,
            missing_since=_side_since(memory.missing_since, first_seen, MISSING),
            extra_since=_side_since(memory.extra_since, first_seen, EXTRA),
            observed_at=now,
            closed=closed_seconds(memory, first_seen, now),
        ),
        revoked=revocations(audience, memory, {**first_seen, **still}, now),
        exempt=exempt,
        held=held,
        left=left,
    )


def _held(
    expected: Expected, have: AbstractSet[str], in_step: bool, held_before: str | None
) -> tuple[str, tuple[str, ...]]:
    """(held, left): the members Vault grants that the group has, packed; and, from the
    previous check's, those gone from both since."""
    granted = expected.members.keys()
    held = sorted(granted) if in_step else sorted(granted & have)  # no copy of either side
    if held_before is None:
        return pack(held), ()
    left = set(unpack(held_before)).difference(have, granted)
    return pack(held), tuple(sorted(left))


def _side_since(
    kept: datetime | None, first_seen: dict[MemberKey, datetime], kind: Side
) -> datetime | None:
    """A side's onset: kept while it drifts, else its earliest member's (usually now; the
    end of an exemption when that is what made it drift again)."""
    onsets = [at for (k, _), at in first_seen.items() if k == kind]
    if not onsets:
        return None
    return kept or min(onsets)


def _missing_members(
    missing: list[str],
    first_seen: dict[MemberKey, datetime],
    expected: Expected,
    excluded: set[str],
    group: Group,
    attributions: dict[MemberKey, Attribution],
    accounts: frozenset[str] | None = None,
) -> tuple[DriftMember, ...]:
    """Missing members, each with what the group's other rules say about its access (and,
    where members must be users of the provider, whether it has one)."""
    domains = domains_of(group.include) if missing else set()
    return tuple(
        DriftMember(
            e,
            MISSING,
            first_seen[(MISSING, e)],
            parse_time(expected.members[e]),
            excluded=e in excluded,
            domain_rule=covering(e, domains),
            attribution=attributions[(MISSING, e)],
            no_account=accounts is not None and e not in accounts,
        )
        for e in missing
    )


def _attributions(
    first_seen: dict[MemberKey, datetime], memory: DriftMemory, expected: Expected
) -> dict[MemberKey, Attribution]:
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


def _notes(*members: Iterable[DriftMember]) -> dict[MemberKey, str]:
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


def _error_of(audience: Audience, expected: Expected, actual: Actual) -> str | None:
    """Why the check is incomplete. A provider error comes first, a pending audience's too
    (an audience whose provider is not configured cannot even get a group)."""
    if expected.error is not None:
        return expected.error
    if actual.error is not None:
        return actual.error
    if audience.group_id is None:
        return None
    if actual.group is None:
        return f"{group_noun(audience.provider)} {audience.group_id} not found"
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
