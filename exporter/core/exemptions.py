"""Exemptions: a sanctioned exception for one member of one audience, with a reason, an owner
and an end date (docs/exemptions.md). Pure: every function takes ``now``.

An exemption names a side. ``extra``: the member may stay in the provider's group although
Vault does not grant it (a contractor while the Vault request goes through, a break-glass
account). ``missing``: the member may stay out of the group although Vault grants it. While
it is in force and the member differs on that side, the member is not drift: it counts in no
status, level, counter or alert, no sync adds or removes it, and its sessions are never
revoked. Once it ends (expired or deleted), the member drifts again from that moment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.core.model import Side

EXTRA, MISSING = Side.EXTRA, Side.MISSING
SIDES = (EXTRA, MISSING)
MAX_DURATION = timedelta(days=90)
EXPIRING_WITHIN = timedelta(days=7)  # the digest's and the dashboards' "ending soon"
# How long an ended exemption still dates a reopened drift: a check in between has seen it.
ENDED_LOOKBACK = timedelta(days=1)

# How an exemption ended (``end_reason``).
DELETED = "deleted"
EXPIRED = "expired"
REPLACED = "replaced"


@dataclass(frozen=True)
class Exemption:
    """One exemption as persisted; ``ended_at`` is None while nobody ended it."""

    audience: str
    email: str  # lowercased
    side: Side
    reason: str
    owner: str  # who made it: "page:<user>" or "api:<token name>"
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None  # deleted | expired | replaced

    def in_force(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    def ended(self, now: datetime) -> datetime | None:
        """When it stopped being in force (deleted, replaced, or its end date), if it has."""
        if self.ended_at is not None:
            return min(self.ended_at, self.expires_at)
        return self.expires_at if self.expires_at <= now else None


Exemptions = Mapping[str, tuple[Exemption, ...]]
"""Per audience, its exemptions (in force, and recently ended where a check needs them)."""


def in_force(exemptions: Iterable[Exemption], now: datetime) -> tuple[Exemption, ...]:
    return tuple(e for e in exemptions if e.in_force(now))


def exempt_keys(exemptions: Iterable[Exemption], now: datetime) -> set[tuple[Side, str]]:
    """(side, email) of the exemptions in force."""
    return {(e.side, e.email) for e in exemptions if e.in_force(now)}


def is_exempt(
    exemptions: Iterable[Exemption], email: str, now: datetime, side: Side | None = None
) -> bool:
    """Whether an exemption in force covers ``email`` (on ``side``, or on either side).

    Session revocation asks this with no side: no session of an exempt member is revoked.
    """
    wanted = email.lower()
    return any(
        e.email == wanted and (side is None or e.side == side) and e.in_force(now)
        for e in exemptions
    )


def split_exempt(
    missing: list[str], extra: list[str], exemptions: Iterable[Exemption], now: datetime
) -> tuple[list[str], list[str], set[tuple[Side, str]]]:
    """(missing, extra) without the members an exemption in force covers on their side, and
    the (side, email) of those covered: differing, but not drift."""
    keys = exempt_keys(exemptions, now)
    if not keys:
        return missing, extra, set()
    covered = {(MISSING, e) for e in missing if (MISSING, e) in keys}
    covered |= {(EXTRA, e) for e in extra if (EXTRA, e) in keys}
    return (
        [e for e in missing if (MISSING, e) not in covered],
        [e for e in extra if (EXTRA, e) not in covered],
        covered,
    )


def exempt_sides(
    exemptions: Iterable[Exemption], now: datetime
) -> tuple[frozenset[str], frozenset[str]]:
    """(keep, leave_out): the exempt ``extra`` members (never removed) and the exempt
    ``missing`` ones (never added), for a sync plan."""
    keys = exempt_keys(exemptions, now)
    return (
        frozenset(email for side, email in keys if side == EXTRA),
        frozenset(email for side, email in keys if side == MISSING),
    )


def exempt_target(
    want: set[str], listed: Collection[str], keep: Collection[str], leave_out: Collection[str]
) -> set[str]:
    """The members a sync aims at: Vault's (``want``, lowercased), plus the exempt extra
    members the group lists (never removed), minus the exempt missing members it does not
    list (never added). A plan made from it neither adds nor removes an exempt member."""
    if not keep and not leave_out:
        return want
    have = {e.lower() for e in listed}
    kept = {e for e in keep if e in have}
    left_out = {e for e in leave_out if e not in have}
    return (want | kept) - left_out


def sync_target(
    expected: Collection[str],
    listed: Collection[str],
    exemptions: Iterable[Exemption],
    now: datetime,
) -> set[str]:
    """``exempt_target`` with the exemptions in force at ``now``."""
    keep, leave_out = exempt_sides(exemptions, now)
    return exempt_target({e.lower() for e in expected}, listed, keep, leave_out)


def reopened_at(
    exemptions: Iterable[Exemption],
    side: Side,
    email: str,
    observed_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """When a member drifting now drifts from, if an exemption of it on that side ended
    since the last check that read both sides (``observed_at``): that end. Its onset is
    then, not its first sighting. None: no such exemption."""
    ends = [
        end
        for e in exemptions
        if e.side == side
        and e.email == email
        and (end := e.ended(now)) is not None
        and (observed_at is None or end > observed_at)
    ]
    return max(ends) if ends else None


def expiring(
    exemptions: Iterable[Exemption], now: datetime, within: timedelta = EXPIRING_WITHIN
) -> list[Exemption]:
    """The exemptions in force that end within ``within``, soonest first."""
    return sorted(
        (e for e in exemptions if e.in_force(now) and e.expires_at <= now + within),
        key=lambda e: (e.expires_at, e.audience, e.email),
    )


def due_to_expire(exemptions: Exemptions, now: datetime) -> list[Exemption]:
    """The exemptions past their end date that nobody has marked ended yet."""
    return [
        e
        for rows in exemptions.values()
        for e in rows
        if e.ended_at is None and e.expires_at <= now
    ]


def exemption_problems(
    email: str, side: str, reason: str, expires_at: datetime, now: datetime
) -> list[str]:
    """What is wrong with a new exemption, every problem at once (empty: it is valid)."""
    problems = []
    if "@" not in email or any(c.isspace() for c in email) or len(email) > 320:
        problems.append("email: must be an email address")
    if side not in SIDES:
        problems.append('side: must be "extra" or "missing"')
    if not reason.strip():
        problems.append("reason: required")
    if expires_at <= now:
        problems.append("expires_at: must be in the future")
    elif expires_at - now > MAX_DURATION:
        problems.append("expires_at: an exemption lasts at most 90 days")
    return problems
