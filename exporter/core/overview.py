"""The operator page's view of a snapshot at an account's scale. Pure.

What needs action (``drift``, ``error``, ``pending``) comes first, most urgent first; what is
in sync is kept apart, to be shown compactly. A card previews a few members per side, grouped
by the hint the core gives them, so that one hint shared by many members is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from exporter.core.levels import LEVEL_RANK
from exporter.core.model import AlertLevel, AudienceCheck, DriftMember, Status
from exporter.core.snapshot import Snapshot
from exporter.core.wording import hint

CARD_MEMBERS = 5  # members shown per side on a card; the rest are in the details view
NEEDS_ACTION = (Status.DRIFT, Status.ERROR, Status.PENDING)


def attention_level(check: AudienceCheck, snapshot: Snapshot, now: datetime) -> AlertLevel:
    """The level an operator sees: the audience's alert level; an error counts as at least
    a warning (as on the header badge)."""
    level = snapshot.level(check, now)
    if check.status is Status.ERROR and LEVEL_RANK[level] < LEVEL_RANK[AlertLevel.WARNING]:
        return AlertLevel.WARNING
    return level


def since(check: AudienceCheck) -> datetime | None:
    """How long it has needed action: the drift's onset, or the error's."""
    if check.status is Status.DRIFT:
        return check.drift_since
    if check.status is Status.ERROR:
        return check.memory.error_since
    return None


def by_attention(
    checks: Iterable[AudienceCheck], snapshot: Snapshot, now: datetime
) -> list[AudienceCheck]:
    """Most urgent first: by level, then the oldest first, then by name. An ignored audience
    goes after those not ignored: someone decided it can wait."""

    def key(check: AudienceCheck) -> tuple[bool, int, bool, datetime, str]:
        onset = since(check)
        return (
            snapshot.ignore_of(check.audience.audience, now) is not None,
            -LEVEL_RANK[attention_level(check, snapshot, now)],
            onset is None,
            onset or now,
            check.audience.audience,
        )

    return sorted(checks, key=key)


def needs_action(check: AudienceCheck) -> bool:
    return check.status in NEEDS_ACTION


@dataclass(frozen=True)
class HintGroup:
    """Members of one side that share one hint: the hint is written once, over them."""

    hint: str
    total: int  # members of the side with this hint
    shown: tuple[DriftMember, ...]  # the first of them shown on the card


@dataclass(frozen=True)
class SidePreview:
    """One side (missing or extra) of a card: its hint groups, at most ``limit`` members."""

    total: int
    groups: tuple[HintGroup, ...]

    @property
    def more(self) -> int:
        """Members of the side not shown on the card."""
        return self.total - sum(len(group.shown) for group in self.groups)


def preview(
    members: Sequence[DriftMember],
    now: datetime | None = None,
    limit: int = CARD_MEMBERS,
    where: str = "Cloudflare",
) -> SidePreview:
    """Group a side's members by hint (largest group first) and share ``limit`` places among
    the groups in turn, so that a rare hint (an exclusion) is not hidden by a common one.
    Groups left without a place are counted in ``more``, not listed. ``now`` is what an
    attributed hint's age ("2 h ago") is measured from."""
    by_hint: dict[str, list[DriftMember]] = {}
    for member in members:
        by_hint.setdefault(hint(member, now, where), []).append(member)
    ordered = sorted(by_hint.items(), key=lambda item: -len(item[1]))  # stable: first seen
    places = [0] * len(ordered)
    left, turn = min(limit, len(members)), 0
    while left:
        if places[turn] < len(ordered[turn][1]):
            places[turn] += 1
            left -= 1
        turn = (turn + 1) % len(ordered)
    groups = tuple(
        HintGroup(text, len(group), tuple(group[:count]))
        for (text, group), count in zip(ordered, places, strict=True)
        if count
    )
    return SidePreview(len(members), groups)
