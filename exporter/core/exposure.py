"""Exposure: how long drifting members last, and how long revocations take. Pure.

Member-seconds are counted "as observed by checks": a member drifting now counts from its
first-seen time up to the last check that read both sides (``observed_at``); a member that
stops drifting counts up to the check that found it gone, and its seconds move into the
memory's ``closed`` totals, which are persisted. So the exposure counters only grow: a
failing check or a restart freezes them, the next check that reads both sides moves them on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from exporter.core.model import Audience, DriftMemory, MemberKey, MemberSeconds, Revocation, Side

# Buckets of vault_drift_revocation_duration_seconds (docs/design.md, "Exposure"); 900 s is
# the SLO's threshold.
REVOCATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0)
REVOCATION_SLO_SECONDS = 900.0  # the digest's "missed the SLO" (alerts.yml sets its own once)
INF = "+Inf"


def _span(start: datetime, end: datetime | None) -> float:
    return 0.0 if end is None else max(0.0, (end - start).total_seconds())


def member_seconds(memory: DriftMemory) -> MemberSeconds:
    """The exposure counters' values: closed totals plus the members drifting now."""
    if not memory.first_seen:
        return memory.closed
    sums = {Side.MISSING: memory.closed.missing, Side.EXTRA: memory.closed.extra}
    for (kind, _), first in memory.first_seen.items():
        sums[kind] = sums.get(kind, 0.0) + _span(first, memory.observed_at)
    return MemberSeconds(sums[Side.MISSING], sums[Side.EXTRA])


def closed_seconds(
    memory: DriftMemory, current: Mapping[MemberKey, datetime], at: datetime | None
) -> MemberSeconds:
    """``memory``'s closed totals plus the members no longer in ``current``, each counted up
    to ``at`` (never before its last observation, so a clock step back cannot lower them)."""
    gone = [key for key in memory.first_seen if key not in current]
    if not gone:
        return memory.closed
    if at is not None and memory.observed_at is not None:
        at = max(at, memory.observed_at)
    sums = {Side.MISSING: memory.closed.missing, Side.EXTRA: memory.closed.extra}
    for key in gone:
        sums[key[0]] = sums.get(key[0], 0.0) + _span(memory.first_seen[key], at)
    return MemberSeconds(sums[Side.MISSING], sums[Side.EXTRA])


def revocations(
    audience: Audience,
    memory: DriftMemory,
    current: Mapping[MemberKey, datetime],
    now: datetime,
) -> tuple[Revocation, ...]:
    """The members extra at the previous check that this check (which read the group) no
    longer finds extra, whatever removed them."""
    gone = sorted(
        (email, first)
        for (kind, email), first in memory.first_seen.items()
        if kind == Side.EXTRA and (kind, email) not in current
    )
    return tuple(
        Revocation(audience.audience, audience.namespace, audience.provider, email, first, now)
        for email, first in gone
    )


def bucket_of(seconds: float) -> str:
    """The histogram bucket an observation falls in: the smallest bound it does not exceed,
    written as prometheus_client writes ``le`` (``900.0``), or ``+Inf``."""
    for bound in REVOCATION_BUCKETS:
        if seconds <= bound:
            return le_text(bound)
    return INF


def le_text(bound: float) -> str:
    return repr(float(bound))


@dataclass(frozen=True)
class LatencyTotals:
    """The revocation histogram of one (namespace, provider), as persisted: observations per
    bucket (not cumulative) and their sum."""

    counts: Mapping[str, int] = field(default_factory=dict)  # bucket_of(...) -> observations
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations <= le) for every bound, then ``+Inf``: the exposition's buckets."""
        running, result = 0, []
        for bound in REVOCATION_BUCKETS:
            running += self.counts.get(le_text(bound), 0)
            result.append((le_text(bound), running))
        return [*result, (INF, self.count)]

    def plus(self, revoked: Iterable[Revocation]) -> LatencyTotals:
        counts, seconds = dict(self.counts), self.seconds
        for revocation in revoked:
            bucket = bucket_of(revocation.seconds)
            counts[bucket] = counts.get(bucket, 0) + 1
            seconds += revocation.seconds
        return LatencyTotals(counts, seconds)


RevocationTotals = Mapping[tuple[str, str], LatencyTotals]
"""Per (namespace, provider): the revocation histogram's totals since the first revocation."""
