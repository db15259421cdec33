"""The digest's sessions ended (README, "Effective removal"): how many leavers had their
Access sessions revoked within the period, and how long after the first sighting; which are
still pending. Pure: frames in, plain data out.

The time of one is its access end: from first seen extra to the sessions revoked, or from the
removal when the email was never seen extra (the exporter's own removal of a member no check
saw extra first), as ``vault_drift_access_end_duration_seconds`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from reports.duration import human_duration

REASON_WORDS = {
    "sync": "by a sync",
    "auto_sync": "by auto-sync",
    "observed_removal": "removed by someone else",
}


@dataclass(frozen=True)
class SlowestEnd:
    audience: str
    email: str
    lasted: str


@dataclass(frozen=True)
class SessionsEnded:
    enabled: bool = True  # the setting revoke_sessions, now
    count: int = 0  # leavers whose sessions ended within the period
    by_reason: list[tuple[int, str]] = field(default_factory=list)  # (count, why), most first
    median: str | None = None  # access end, first seen extra (or removal) -> revoked
    slowest: SlowestEnd | None = None
    from_removal: int = 0  # never seen extra: counted from their removal
    pending: int = 0  # recorded, not yet confirmed by Cloudflare (at the period's end)
    pending_since: datetime | None = None  # the oldest pending one's removal
    failing: int = 0  # pending ones whose last attempt failed

    @property
    def any(self) -> bool:
        return bool(self.count or self.pending)


def sessions_summary(rows: pd.DataFrame, enabled: bool) -> SessionsEnded:
    """``rows``: the period's session revocations as ``load_history`` reads them (those
    revoked within it, and the pending ones)."""
    if rows.empty:
        return SessionsEnded(enabled)
    ended = rows[rows["state"] == "revoked"]
    start = ended["first_seen_at"].fillna(ended["removed_at"])
    seconds = (ended["revoked_at"] - start).dt.total_seconds().clip(lower=0)
    pending = rows[rows["state"] == "pending"]
    slowest = None
    if not ended.empty:
        at = seconds.idxmax()
        slowest = SlowestEnd(
            str(ended.at[at, "audience"]),
            str(ended.at[at, "email"]),
            human_duration(float(seconds.max())),
        )
    reasons = ended["reason"].map(lambda r: REASON_WORDS.get(r, r)).value_counts()
    return SessionsEnded(
        enabled=enabled,
        count=len(ended),
        by_reason=sorted(
            ((int(n), str(r)) for r, n in reasons.items()), key=lambda x: (-x[0], x[1])
        ),
        median=human_duration(float(seconds.median())) if len(ended) else None,
        slowest=slowest,
        from_removal=int(ended["first_seen_at"].isna().sum()),
        pending=len(pending),
        pending_since=None if pending.empty else pending["removed_at"].min().to_pydatetime(),
        failing=int(pending["last_error"].notna().sum()),
    )
