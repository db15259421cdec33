"""Digest numbers against values worked out by hand from tests/support/example_week.py's week.

Episodes closed within 2026-11-18T08:00Z .. 2026-11-25T08:00Z (id: opened -> closed):
  2: 11-17 08:00 -> 11-18 20:00 = 36 h     3: 2 h     4: 3 h (removed)
  5: 0.5 h     6: 24 h     8: 6 h
sorted 0.5, 2, 3, 6, 24, 36: median (3 + 6) / 2 = 4.5 h; p90 (linear, rank 0.9 x 5 = 4.5)
= 24 + 0.5 x (36 - 24) = 30 h. Episode 1 (11-10) is outside the period.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.reports import NOW

from exporter.vault import SqliteStore
from reports.digest import build_digest, member_list
from reports.duration import human_duration
from reports.history import History, UnknownPeriod, load_history, period_ending
from reports.measures import resolve_seconds

HOUR = 3600


def history_at(db: Path, now: datetime, period: str = "7d") -> History:
    return load_history(SqliteStore(db).open(), period_ending(period, now))


def digest_for(db: Path, period: str = "7d"):  # type: ignore[no-untyped-def]
    history = history_at(db, NOW, period)
    return history, build_digest(history, NOW)


def test_frames_have_utc_datetime_columns(history_db: Path) -> None:
    history, _ = digest_for(history_db)
    for frame, column in [
        (history.episodes, "opened_at"),
        (history.episodes, "closed_at"),
        (history.cycles, "started_at"),
        (history.members, "first_seen_at"),
        (history.syncs, "started_at"),
        (history.errors, "at"),
        (history.state, "drift_since"),
    ]:
        assert str(frame[column].dt.tz) == "UTC", column
    assert list(history.episodes["id"]) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert len(history.cycles) == 7 * 96 + 1  # every 15 minutes, both ends included


def test_time_to_resolve_median_and_p90(history_db: Path) -> None:
    history, digest = digest_for(history_db)
    seconds = resolve_seconds(history.episodes, history.period)
    assert (seconds.count, seconds.median, seconds.p90) == (6, 4.5 * HOUR, 30 * HOUR)
    assert digest.time_to_resolve.median == "4 hours 30 minutes"
    assert digest.time_to_resolve.p90 == "1 day 6 hours"
    assert (digest.opened_count, digest.resolved_count) == (7, 6)


def test_recurring_audiences_count_episodes_overlapping_the_period(history_db: Path) -> None:
    _, week = digest_for(history_db)
    # lms-viewer: 3, 5, 8 (1 is older); crm-sales: 2 (opened before the period) and 9.
    assert week.recurring == [("lms-viewer", 3), ("crm-sales", 2)]
    _, day = digest_for(history_db, "1d")
    assert day.recurring == []


def test_exposure_in_extra_member_hours(history_db: Path) -> None:
    _, week = digest_for(history_db)
    # Each extra member from first seen to gone (a revocation row) or, still extra, to the
    # last check that saw it (11-25 08:00), clipped to the period 11-18 08:00 .. 11-25 08:00.
    expected = {
        "lms-admin": 62.1,  # mallory 50 h, eve 12 h (still extra); trent 5 min
        "wiki-readers": 30.3,  # temp1/temp2 10 min each, temp3 6 h, temp4 24 h
        "crm-sales": 24.0,  # z, w: extra since 11-17 08:00, clipped to 12 h each
        "lms-viewer": 4.5,  # x, y 2 h each; intern 30 min (ghost, 11-10, is outside)
    }
    assert dict(week.exposure) == expected
    assert [name for name, _ in week.exposure] == list(expected)  # largest first
    assert week.exposure_hours == 120.9
    _, day = digest_for(history_db, "1d")
    assert day.exposure == [("lms-admin", 36.1)]  # 24 h + 12 h + 5 min


def test_revocations_against_the_slo_and_the_longest_lived_extra_member(
    history_db: Path,
) -> None:
    _, week = digest_for(history_db)
    revocations = week.revocations
    # Found gone within the week: z, w, x, y, intern, temp1-4, trent (ghost is older).
    assert (revocations.count, revocations.within_slo, revocations.slo) == (10, 3, "15 minutes")
    assert [(r.audience, r.email, r.lasted) for r in revocations.late] == [
        ("crm-sales", "w@contractor.example", "1 day 12 hours"),
        ("crm-sales", "z@contractor.example", "1 day 12 hours"),
        ("wiki-readers", "temp4@example.com", "1 day"),
        ("wiki-readers", "temp3@example.com", "6 hours"),
        ("lms-viewer", "x@contractor.example", "2 hours"),
        ("lms-viewer", "y@contractor.example", "2 hours"),
        ("lms-viewer", "intern@example.com", "30 minutes"),
    ]
    longest = revocations.longest
    assert longest is not None and longest.revoked_at is None  # still has access
    assert (longest.audience, longest.email, longest.lasted) == (
        "lms-admin",
        "mallory@contractor.example",
        "2 days 2 hours",
    )
    _, day = digest_for(history_db, "1d")
    assert (day.revocations.count, day.revocations.within_slo, day.revocations.late) == (1, 1, [])


def test_status_now_and_current_drifts(history_db: Path) -> None:
    _, digest = digest_for(history_db)
    s = digest.summary
    assert (s.total, s.pending, s.synced, s.drift, s.error) == (6, 1, 2, 2, 1)
    admin, sales = digest.current
    assert (admin.audience, admin.level, admin.age) == ("lms-admin", "critical", "2 days 2 hours")
    assert admin.missing.shown == ["alice@example.com", "bob@example.com"]
    assert admin.extra.total == 2
    assert (sales.audience, sales.level, sales.age) == ("crm-sales", "info", "30 minutes")
    assert (len(sales.missing.shown), sales.missing.more, sales.missing.total) == (20, 5, 25)


def test_new_still_open_resolved_relative_to_the_last_digest(history_db: Path) -> None:
    _, digest = digest_for(history_db)
    assert digest.since_last_digest
    assert [e.id for e in digest.new] == [8, 9]
    assert [e.id for e in digest.still_open] == [7]
    assert [e.id for e in digest.resolved] == [8]

    with sqlite3.connect(history_db) as conn:
        conn.execute("DELETE FROM sys_infra_drift_mail")
    conn.close()
    _, first = digest_for(history_db, "1d")
    assert not first.since_last_digest and first.since == period_ending("1d", NOW).start
    assert [e.id for e in first.new] == [8, 9]
    assert [e.id for e in first.still_open] == [7]


def test_syncs_grouped_by_trigger_actor_result(history_db: Path) -> None:
    _, digest = digest_for(history_db)
    rows = {
        (s.action, s.trigger, s.actor, s.result): (s.count, s.added, s.removed)
        for s in digest.syncs
    }
    assert rows[("sync", "auto", "auto", "synced")] == (1, 3, 0)
    assert rows[("sync", "page", "alice@tpb.ai", "synced")] == (1, 1, 2)
    # a blocked sync changed nothing: its planned removals are not counted
    assert rows[("sync", "cli", "ops@bastion", "blocked")] == (1, 0, 0)
    assert {trigger for _, trigger, _, _ in rows} == {"api", "page", "cli", "auto"}
    assert len(digest.errors) == 1
    assert (digest.errors[0].count, digest.errors[0].last_message) == (
        3,
        "Cloudflare API timed out after 10s",
    )


def test_thresholds_come_from_the_settings_table(history_db: Path) -> None:
    with sqlite3.connect(history_db) as conn:
        conn.execute(
            "INSERT INTO sys_infra_drift_settings VALUES ('critical_threshold_seconds', '604800'),"
            " ('warning_threshold_seconds', '7200')"
        )
    conn.close()
    _, digest = digest_for(history_db)
    # lms-admin's extra members keep it critical: the extra thresholds (1h) still apply.
    assert [(c.level, c.reason) for c in digest.current] == [
        ("critical", "extra"),
        ("info", "missing"),
    ]
    with sqlite3.connect(history_db) as conn:
        conn.execute(
            "INSERT INTO sys_infra_drift_settings VALUES"
            " ('extra_critical_threshold_seconds', '604800'),"
            " ('extra_warning_threshold_seconds', '7200')"
        )
    conn.close()
    _, digest = digest_for(history_db)
    assert [c.level for c in digest.current] == ["warning", "info"]


@pytest.mark.parametrize(
    ("age", "level"), [(3599, "info"), (3600, "warning"), (86399, "warning"), (86400, "critical")]
)
def test_current_drift_levels_at_the_thresholds(history_db: Path, age: int, level: str) -> None:
    crm_since = datetime.fromisoformat("2026-11-25T07:30:00+00:00")  # crm-sales' drift onset
    now = crm_since + timedelta(seconds=age)
    current = build_digest(history_at(history_db, now, "1d"), now).current
    assert {c.audience: c.level for c in current}["crm-sales"] == level


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "less than a minute"),
        (60, "1 minute"),
        (2 * HOUR, "2 hours"),
        (27 * HOUR, "1 day 3 hours"),
        (86400 + 5 * 60, "1 day"),
        (2 * 86400 + 2 * HOUR + 59, "2 days 2 hours"),
        (90 * 60, "1 hour 30 minutes"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_member_list_sorts_and_truncates() -> None:
    listed = member_list([f"u{n:02d}@x" for n in range(23, -1, -1)])
    assert listed.shown[0] == "u00@x" and len(listed.shown) == 20 and listed.more == 4


def test_unknown_period_is_refused() -> None:
    with pytest.raises(UnknownPeriod, match="'30d'"):
        period_ending("30d", NOW)
