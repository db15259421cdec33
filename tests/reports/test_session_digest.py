"""The digest's sessions ended (README, "Effective removal"): the leavers whose sessions were
revoked within the period, how long after the first sighting (or after the removal, when
never seen extra), and those still pending; read from the store's session revocations."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from support.reports import NOW

from exporter.core.settings import Settings
from exporter.vault import SqliteStore
from reports.digest import build_digest
from reports.history import load_history, period_ending
from reports.render import render_digest
from reports.sessions import SessionsEnded, SlowestEnd

INSERT = (
    "INSERT INTO sys_infra_drift_session_revocation (audience, namespace, provider, email,"
    " reason, removed_at, first_seen_at, state, attempts, revoked_at, last_error)"
    " VALUES (?, ?, 'cloudflare_access', ?, ?, ?, ?, ?, ?, ?, ?)"
)


def digest_of(db: Path, period: str = "7d"):  # type: ignore[no-untyped-def]
    return build_digest(load_history(SqliteStore(db).open(), period_ending(period, NOW)), NOW)


def test_the_example_week_counts_the_sessions_ended_and_how_long_after(history_db: Path) -> None:
    history = load_history(SqliteStore(history_db).open(), period_ending("7d", NOW))
    assert len(history.sessions) == 11  # ten revoked in the period, one pending; ghost's before
    assert str(history.sessions["revoked_at"].dt.tz) == "UTC"
    # 5 min, 10 min x2, 30 min, 2 h x2, 6 h, 1 d, 1 d 12 h x2 (each + 20 s): median 2 h
    assert build_digest(history, NOW).sessions == SessionsEnded(
        enabled=True,
        count=10,
        by_reason=[(6, "removed by someone else"), (4, "by a sync")],
        median="2 hours",
        slowest=SlowestEnd("crm-sales", "z@contractor.example", "1 day 12 hours"),
        from_removal=0,
        pending=1,
        pending_since=NOW - timedelta(minutes=30),
        failing=1,
    )


def test_never_seen_extra_counts_from_the_removal_and_only_the_period_counts(
    history_db: Path,
) -> None:
    with sqlite3.connect(history_db) as conn:
        conn.execute("DELETE FROM sys_infra_drift_session_revocation")
        conn.executemany(
            INSERT,
            [
                # removed by auto-sync before any check saw it extra: from the removal, 40 s
                ("lms-viewer", "lms", "quick@example.com", "auto_sync", "2026-11-24T10:00:00Z",
                 None, "revoked", 1, "2026-11-24T10:00:40+00:00", None),
                # seen extra 3 h before its sessions ended (another writer's time format)
                ("crm-sales", "crm", "slow@example.com", "observed_removal",
                 "2026-11-23T11:00:00Z", "2026-11-23T09:00:00.250Z", "revoked", 3,
                 "2026-11-23T12:00:00Z", None),
                # ended before the period, cancelled, and one pending without a failure yet
                ("crm-sales", "crm", "old@example.com", "sync", "2026-11-10T00:00:00Z", None,
                 "revoked", 1, "2026-11-10T00:00:05Z", None),
                ("crm-sales", "crm", "back@example.com", "sync", "2026-11-24T00:00:00Z", None,
                 "cancelled", 0, None, "granted by Vault again"),
                ("lms-admin", "lms", "next@example.com", "sync", "2026-11-25T07:59:00Z", None,
                 "pending", 0, None, None),
            ],
        )  # fmt: skip
    sessions = digest_of(history_db).sessions
    assert (sessions.count, sessions.from_removal, sessions.median) == (2, 1, "1 hour 30 minutes")
    assert sessions.slowest == SlowestEnd("crm-sales", "slow@example.com", "2 hours 59 minutes")
    assert sessions.by_reason == [(1, "by auto-sync"), (1, "removed by someone else")]
    assert (sessions.pending, sessions.failing) == (1, 0)
    day = digest_of(history_db, "1d").sessions  # 11-24 08:00 to 11-25 08:00
    assert (day.count, day.slowest) == (1, SlowestEnd("lms-viewer", "quick@example.com", "less than a minute"))  # fmt: skip
    text = render_digest(digest_of(history_db), "https://vault-drift.example.com").text
    assert "; 1 counted from the removal (never seen extra)" in text
    assert "Sessions still to end: 1 (oldest removed 2026-11-25 07:59 UTC)" in text


def test_with_revoke_sessions_off_the_digest_says_so(history_db: Path) -> None:
    store = SqliteStore(history_db).open()
    store.save_settings(Settings(revoke_sessions=False))
    with sqlite3.connect(history_db) as conn:
        conn.execute("DELETE FROM sys_infra_drift_session_revocation")
    digest = digest_of(history_db)
    assert digest.sessions == SessionsEnded(enabled=False)
    mail = render_digest(digest, "https://vault-drift.example.com")
    assert "Sessions ended: none (revoke_sessions is off: leavers keep their sessions" in mail.text
    assert "Sessions still to end" not in mail.text and "(revoke_sessions is off)" in mail.html
