"""The digest of a period, as plain data for the templates (pure: no I/O, no clock read).

"New", "still open" and "resolved" are relative to the last digest that went out (or to the
period start when none did): what a reader of the previous digest has not seen yet.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from exporter.core.exposure import REVOCATION_SLO_SECONDS
from exporter.core.levels import verdict
from exporter.core.model import AlertLevel, Side, Status
from reports.duration import human_duration
from reports.exemptions import Exemptions, exemption_summary
from reports.history import History
from reports.measures import (
    Revoked,
    SyncCount,
    extra_intervals,
    extra_member_hours,
    longest_extra,
    recurring_audiences,
    resolve_seconds,
    revocations_in,
    sync_counts,
)
from reports.sessions import SessionsEnded, sessions_summary

MEMBERS_SHOWN = 20
LATE_SHOWN = 20  # revocations that missed the SLO listed before "and N more"


@dataclass(frozen=True)
class StatusSummary:
    total: int
    pending: int
    synced: int
    drift: int
    error: int


@dataclass(frozen=True)
class MemberList:
    shown: list[str]
    more: int  # "and N more"
    notes: Mapping[str, str] = field(default_factory=dict)  # email -> access note, if any

    @property
    def total(self) -> int:
        return len(self.shown) + self.more

    @property
    def labelled(self) -> list[str]:
        """The shown emails, each followed by its access note in brackets when it has one."""
        return [f"{e} ({self.notes[e]})" if e in self.notes else e for e in self.shown]


def member_list(
    emails: list[str], limit: int = MEMBERS_SHOWN, notes: Mapping[str, str] | None = None
) -> MemberList:
    ordered = sorted(emails)
    shown = ordered[:limit]
    kept = {e: notes[e] for e in shown if e in notes} if notes else {}
    return MemberList(shown, max(len(ordered) - limit, 0), kept)


@dataclass(frozen=True)
class CurrentDrift:
    audience: str
    namespace: str
    since: datetime | None
    age: str
    level: AlertLevel  # info | warning | critical (a drift of unknown onset counts as new)
    reason: Side | None  # the side that set the level: extra (an exposure), missing (an outage)
    missing: MemberList
    extra: MemberList
    episode_id: int | None


@dataclass(frozen=True)
class EpisodeLine:
    id: int
    audience: str
    namespace: str
    opened_at: datetime
    closed_at: datetime | None
    duration: str  # how long it lasted, or has lasted so far
    close_reason: str | None
    closed_by: str | None
    peak_missing: int
    peak_extra: int


@dataclass(frozen=True)
class ResolveTimes:
    count: int
    median: str | None
    p90: str | None


@dataclass(frozen=True)
class ErrorLine:
    audience: str
    count: int
    last_at: datetime
    last_message: str


@dataclass(frozen=True)
class RevokedLine:
    """An extra member and how long it kept its access; ``revoked_at`` None: it still has."""

    audience: str
    email: str
    lasted: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class Revocations:
    """The period's revocations against the SLO, and the longest-lived extra member."""

    count: int  # extra members found gone within the period, whatever removed them
    within_slo: int
    slo: str  # the SLO's threshold, in words
    late: list[RevokedLine]  # those that missed it, longest first
    late_more: int
    longest: RevokedLine | None


@dataclass(frozen=True)
class Digest:
    period: str  # "1d" | "7d"
    start: datetime
    end: datetime
    since: datetime  # reference of "new since last digest": the last digest, or the start
    since_last_digest: bool
    summary: StatusSummary
    current: list[CurrentDrift]
    new: list[EpisodeLine]  # opened since the reference
    still_open: list[EpisodeLine]  # opened before it, open now
    resolved: list[EpisodeLine]  # closed since the reference
    opened_count: int  # in the whole period
    resolved_count: int
    time_to_resolve: ResolveTimes
    recurring: list[tuple[str, int]]
    exposure_hours: float
    exposure: list[tuple[str, float]]  # per audience, largest first
    revocations: Revocations
    syncs: list[SyncCount]
    errors: list[ErrorLine]
    exemptions: Exemptions = field(default_factory=Exemptions)
    sessions: SessionsEnded = field(default_factory=SessionsEnded)

    @property
    def subject(self) -> str:
        """Short enough not to be folded: ``[TPB Vault] Drift digest (daily): 2 drift, ...``."""
        label = {"1d": "daily", "7d": "weekly"}.get(self.period, self.period)
        s = self.summary
        return (
            f"[TPB Vault] Drift digest ({label}): {s.drift} drift, {s.error} error,"
            f" {s.synced}/{s.total} in sync"
        )


def build_digest(history: History, now: datetime) -> Digest:
    period, episodes = history.period, history.episodes
    since = history.last_digest_at or period.start
    lines = [_episode_line(row, now) for row in episodes.to_dict("records")]
    resolve = resolve_seconds(episodes, period)
    intervals = extra_intervals(history.revocations, history.members, history.state, period)
    exposure = extra_member_hours(intervals, period)
    return Digest(
        period=period.label,
        start=period.start,
        end=period.end,
        since=since,
        since_last_digest=history.last_digest_at is not None,
        summary=status_summary(history.state),
        current=current_drifts(history, now),
        new=[e for e in lines if e.opened_at > since],
        still_open=[e for e in lines if e.closed_at is None and e.opened_at <= since],
        resolved=[e for e in lines if e.closed_at is not None and e.closed_at > since],
        opened_count=sum(period.start <= e.opened_at <= period.end for e in lines),
        resolved_count=resolve.count,
        time_to_resolve=ResolveTimes(
            resolve.count,
            None if resolve.median is None else human_duration(resolve.median),
            None if resolve.p90 is None else human_duration(resolve.p90),
        ),
        recurring=recurring_audiences(episodes),
        exposure_hours=round(sum(exposure.values()), 1),
        exposure=sorted(((a, round(h, 1)) for a, h in exposure.items()), key=lambda x: -x[1]),
        revocations=revocation_summary(
            revocations_in(history.revocations, period), longest_extra(intervals, period)
        ),
        syncs=sync_counts(history.syncs),
        errors=error_lines(history.errors),
        exemptions=exemption_summary(history.exemptions, period),
        sessions=sessions_summary(history.sessions, history.settings.revoke_sessions),
    )


def status_summary(state: pd.DataFrame) -> StatusSummary:
    counts = state["sync_status"].value_counts()
    return StatusSummary(
        total=len(state),
        **{
            status: int(counts.get(status, 0)) for status in ("pending", "synced", "drift", "error")
        },
    )


def current_drifts(history: History, now: datetime) -> list[CurrentDrift]:
    levels, members = history.settings.levels, history.members
    drifting = history.state[history.state["sync_status"] == "drift"]
    result = []
    for row in drifting.to_dict("records"):
        since = _time(row["drift_since"])
        age = (now - since).total_seconds() if since else 0.0
        mine = members[members["audience"] == row["audience"]]
        noted = mine[mine["note"].notna()]
        notes = dict(zip(noted["email"], noted["note"], strict=True))
        missing = list(mine[mine["kind"] == Side.MISSING]["email"])
        extra = list(mine[mine["kind"] == Side.EXTRA]["email"])
        onsets = _onsets(row, since or now, bool(missing), bool(extra))
        judged = verdict(Status.DRIFT, *onsets, now, levels)
        result.append(
            CurrentDrift(
                audience=row["audience"],
                namespace=row["namespace"],
                since=since,
                age=human_duration(age) if since else "unknown",
                level=judged.level,
                reason=judged.reason,
                missing=member_list(missing, notes=notes),
                extra=member_list(extra, notes=notes),
                episode_id=None if pd.isna(row["episode_id"]) else int(row["episode_id"]),
            )
        )
    return sorted(result, key=lambda d: (d.since is None, d.since or now, d.audience))


def _onsets(
    row: Mapping[Hashable, Any], since: datetime, missing: bool, extra: bool
) -> tuple[datetime | None, datetime | None]:
    """Each side's onset; a row an older vault-drift wrote has none, and the episode's start
    stands in for each side with members (as the exporter reads it: never a lower level)."""
    found = _time(row.get("missing_since")), _time(row.get("extra_since"))
    if found == (None, None) and _time(row.get("observed_at")) is None:
        return (since if missing else None, since if extra else None)
    return found


def revocation_summary(revoked: list[Revoked], longest: Revoked | None) -> Revocations:
    late = [r for r in revoked if r.seconds > REVOCATION_SLO_SECONDS]
    return Revocations(
        count=len(revoked),
        within_slo=len(revoked) - len(late),
        slo=human_duration(REVOCATION_SLO_SECONDS),
        late=[_revoked_line(r) for r in late[:LATE_SHOWN]],
        late_more=max(0, len(late) - LATE_SHOWN),
        longest=_revoked_line(longest) if longest else None,
    )


def _revoked_line(revoked: Revoked) -> RevokedLine:
    return RevokedLine(
        revoked.audience, revoked.email, human_duration(revoked.seconds), revoked.revoked_at
    )


def error_lines(errors: pd.DataFrame) -> list[ErrorLine]:
    result = []
    for audience, rows in errors.groupby("audience", sort=True):
        last = rows.sort_values(["at", "id"]).iloc[-1]
        result.append(ErrorLine(str(audience), len(rows), _at(last["at"]), str(last["message"])))
    return sorted(result, key=lambda e: (-e.count, e.audience))


def _episode_line(row: Mapping[Hashable, Any], now: datetime) -> EpisodeLine:
    opened, closed = _at(row["opened_at"]), _time(row["closed_at"])
    return EpisodeLine(
        id=int(row["id"]),
        audience=str(row["audience"]),
        namespace=str(row["namespace"]),
        opened_at=opened,
        closed_at=closed,
        duration=human_duration(((closed or now) - opened).total_seconds()),
        close_reason=None if pd.isna(row["close_reason"]) else str(row["close_reason"]),
        closed_by=None if pd.isna(row["closed_by"]) else str(row["closed_by"]),
        peak_missing=int(row["peak_missing"]),
        peak_extra=int(row["peak_extra"]),
    )


def _time(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _at(value: Any) -> datetime:
    """A NOT NULL time column."""
    return pd.Timestamp(value).to_pydatetime()
