"""The numbers of a digest, computed from history frames (pure: no I/O, no clock).

Exposure is "extra-member-hours": for every member Cloudflare let in while Vault did not
grant it, how long that lasted within the period. The exporter keeps per-member times only
for the drift going on now, so:

* open episodes are exact: each current extra member counts from its ``first_seen_at``
  (or the period start) to the period end;
* closed episodes are approximated as ``peak_extra`` x (the episode's time inside the
  period). This is an upper bound: members seen extra later in an episode, or fixed earlier,
  are counted for the whole episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.history import Period


@dataclass(frozen=True)
class ResolveSeconds:
    count: int
    median: float | None
    p90: float | None


def resolve_seconds(episodes: pd.DataFrame, period: Period) -> ResolveSeconds:
    """Opened-to-closed time of the episodes closed within the period (p90: linear)."""
    closed = episodes[
        (episodes["closed_at"] >= period.start) & (episodes["closed_at"] <= period.end)
    ]
    seconds = (closed["closed_at"] - closed["opened_at"]).dt.total_seconds()
    if seconds.empty:
        return ResolveSeconds(0, None, None)
    return ResolveSeconds(len(seconds), float(seconds.median()), float(seconds.quantile(0.9)))


def recurring_audiences(episodes: pd.DataFrame, minimum: int = 2) -> list[tuple[str, int]]:
    """Audiences with at least ``minimum`` episodes overlapping the period, most first."""
    counts = episodes.groupby("audience").size()
    recurring = [(str(name), int(n)) for name, n in counts.items() if n >= minimum]
    return sorted(recurring, key=lambda item: (-item[1], item[0]))


def extra_member_hours(
    episodes: pd.DataFrame, members: pd.DataFrame, period: Period
) -> dict[str, float]:
    """Extra-member-hours per audience within the period (see the module docstring)."""
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    closed = episodes[episodes["closed_at"].notna()]
    overlap = _earliest(closed["closed_at"], end) - _latest(closed["opened_at"], start)
    closed_hours = (overlap.dt.total_seconds() / 3600).clip(lower=0) * closed["peak_extra"]

    extra = members[members["kind"] == "extra"]
    open_span = end - _latest(extra["first_seen_at"], start)
    open_hours = (open_span.dt.total_seconds() / 3600).clip(lower=0)

    totals: dict[str, float] = {}
    pairs = [
        *zip(closed["audience"], closed_hours, strict=True),
        *zip(extra["audience"], open_hours, strict=True),
    ]
    for audience, hours in pairs:
        totals[str(audience)] = totals.get(str(audience), 0.0) + float(hours)
    return {name: hours for name, hours in sorted(totals.items()) if hours > 0}


@dataclass(frozen=True)
class SyncCount:
    action: str
    trigger: str
    actor: str
    result: str
    count: int
    added: int
    removed: int


def sync_counts(syncs: pd.DataFrame) -> list[SyncCount]:
    """Sync attempts grouped by who/what triggered them and how they ended.

    Added / removed count only what was pushed (``synced``): a blocked or failed attempt's
    plan changed nothing.
    """
    keys = ["action", "trigger", "actor", "result"]
    if syncs.empty:
        return []
    pushed = syncs["result"] == "synced"
    syncs = syncs.assign(
        added_count=syncs["added_count"].where(pushed, 0),
        removed_count=syncs["removed_count"].where(pushed, 0),
    )
    grouped = syncs.groupby(keys, sort=True).agg(
        count=("id", "size"), added=("added_count", "sum"), removed=("removed_count", "sum")
    )
    result = []
    for key, row in grouped.iterrows():
        action, trigger, actor, outcome = (str(part) for part in key)  # type: ignore[attr-defined]
        counts = (int(row["count"]), int(row["added"]), int(row["removed"]))
        result.append(SyncCount(action, trigger, actor, outcome, *counts))
    return result


def _earliest(times: pd.Series, bound: pd.Timestamp) -> pd.Series:
    return times.where(times < bound, bound)


def _latest(times: pd.Series, bound: pd.Timestamp) -> pd.Series:
    return times.where(times > bound, bound)
