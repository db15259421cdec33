"""The numbers of a digest, computed from history frames (pure: no I/O, no clock).

Exposure is "extra-member-hours", counted as the exporter's counter
``vault_drift_audience_extra_member_seconds_total`` counts it: for every member Cloudflare let
in while Vault did not grant it, the time from its first sighting to the check that found it
gone (a revocation row) or, for the members still extra, to the last check that saw them
(``observed_at``), clipped to the period. So a digest's figure for an audience is the
counter's increase over the period. Extra members of an audience removed from Vault, and
revocations older than the history's retention, are not counted (the counter forgets them
too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from exporter.core.model import Side
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


def extra_intervals(
    revocations: pd.DataFrame, members: pd.DataFrame, state: pd.DataFrame, period: Period
) -> pd.DataFrame:
    """audience, email, start, end, revoked: each extra member's time extra, as the counter
    counts it (``end`` is when it was found gone, or the last check that saw it)."""
    gone = pd.DataFrame(
        {
            "audience": revocations["audience"],
            "email": revocations["email"],
            "start": revocations["first_seen_at"],
            "end": revocations["revoked_at"],
            "revoked": True,
        }
    )
    extra = members[members["kind"] == Side.EXTRA]
    observed = dict(zip(state["audience"], state["observed_at"], strict=True))
    end = pd.Timestamp(period.end)
    ends = [_when(observed.get(a), end) for a in extra["audience"]]
    still = pd.DataFrame(
        {
            "audience": extra["audience"],
            "email": extra["email"],
            "start": extra["first_seen_at"],
            "end": pd.Series(ends, index=extra.index, dtype="datetime64[ns, UTC]"),
            "revoked": False,
        }
    )
    return pd.concat([frame for frame in (gone, still) if not frame.empty] or [gone])


def extra_member_hours(intervals: pd.DataFrame, period: Period) -> dict[str, float]:
    """Extra-member-hours per audience within the period (see the module docstring)."""
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    if intervals.empty:
        return {}
    overlap = _earliest(intervals["end"], end) - _latest(intervals["start"], start)
    hours = (overlap.dt.total_seconds() / 3600).clip(lower=0)
    totals: dict[str, float] = {}
    for audience, value in zip(intervals["audience"], hours, strict=True):
        totals[str(audience)] = totals.get(str(audience), 0.0) + float(value)
    return {name: value for name, value in sorted(totals.items()) if value > 0}


@dataclass(frozen=True)
class Revoked:
    audience: str
    email: str
    seconds: float
    revoked_at: datetime | None  # None: still extra at the period's end


def revocations_in(revocations: pd.DataFrame, period: Period) -> list[Revoked]:
    """The revocations the period saw (found gone within it), longest first."""
    inside = revocations[
        (revocations["revoked_at"] >= period.start) & (revocations["revoked_at"] <= period.end)
    ]
    found = [
        Revoked(str(a), str(e), float(s), pd.Timestamp(r).to_pydatetime())
        for a, e, s, r in zip(
            inside["audience"],
            inside["email"],
            inside["duration_seconds"],
            inside["revoked_at"],
            strict=True,
        )
    ]
    return sorted(found, key=lambda r: (-r.seconds, r.audience, r.email))


def longest_extra(intervals: pd.DataFrame, period: Period) -> Revoked | None:
    """The extra member that kept its access longest, among those revoked within the period
    and those still extra (their time so far)."""
    seen = intervals[(~intervals["revoked"]) | (intervals["end"] >= period.start)]
    if seen.empty:
        return None
    spans = (seen["end"] - seen["start"]).dt.total_seconds()
    best = seen.assign(seconds=spans).sort_values(
        ["seconds", "audience", "email"], ascending=[False, True, True]
    )
    row = best.iloc[0]
    revoked = pd.Timestamp(row["end"]).to_pydatetime() if row["revoked"] else None
    return Revoked(str(row["audience"]), str(row["email"]), float(row["seconds"]), revoked)


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


def _when(value: Any, default: pd.Timestamp) -> pd.Timestamp:
    """A time from a frame, or ``default`` when it is missing (NaT, None)."""
    return default if value is None or pd.isna(value) else pd.Timestamp(value)
