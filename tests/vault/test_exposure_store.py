"""What exposure persists in the companion tables: side onsets, observed time, closed
member-seconds, revocation rows and the histogram's totals; and rows older versions wrote."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from exporter.core.drift import evaluate
from exporter.core.exposure import member_seconds
from exporter.core.model import Actual, Audience, DriftMemory, Expected, Group
from exporter.vault import SqliteStore
from exporter.vault.store import CheckRecord

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)
AUD = Audience("lms-viewer", "lms", "cloudflare_access", "g1")
STATE = (
    "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id)"
    " VALUES ('lms-viewer', 'lms', 'cloudflare_access', 'g1')"
)


def group(*emails: str) -> Actual:
    return Actual(Group("g1", "lms-viewer", [{"email": {"email": e}} for e in emails]))


def record(store: SqliteStore, actual: Actual, at: datetime) -> None:
    memories = store.memories()
    check = evaluate(
        AUD,
        Expected({"a@x.com": None}),
        actual,
        memories.get("lms-viewer", DriftMemory()),
        at,
    )
    store.record_checks(CheckRecord([check], memories, at))


def test_the_memory_comes_back_as_it_was_written(empty_vault: Path) -> None:
    with sqlite3.connect(empty_vault) as conn:
        conn.execute(STATE)
    store = SqliteStore(empty_vault).open()
    record(store, group("z@x.com"), T0)
    record(store, group("z@x.com"), T0 + timedelta(minutes=10))
    memory = store.memories()["lms-viewer"]
    assert (memory.missing_since, memory.extra_since) == (T0, T0)
    assert memory.observed_at == T0 + timedelta(minutes=10)
    assert member_seconds(memory).extra == 600 and member_seconds(memory).missing == 600
    record(store, group("a@x.com"), T0 + timedelta(minutes=30))
    memory = store.memories()["lms-viewer"]
    assert memory.first_seen == {} and memory.extra_since is None
    assert (memory.closed.missing, memory.closed.extra) == (1800, 1800)
    totals = store.revocation_totals()[("lms", "cloudflare_access")]
    assert (totals.count, totals.seconds, totals.counts) == (1, 1800, {"1800.0": 1})
    with sqlite3.connect(empty_vault) as conn:
        rows = conn.execute(
            "SELECT audience, email, first_seen_at, revoked_at, duration_seconds"
            " FROM sys_infra_drift_revocation"
        ).fetchall()
    assert rows == [
        ("lms-viewer", "z@x.com", "2026-11-25T10:00:00Z", "2026-11-25T10:30:00Z", 1800.0)
    ]


def test_history_pruning_keeps_the_histogram(empty_vault: Path) -> None:
    with sqlite3.connect(empty_vault) as conn:
        conn.execute(STATE)
    store = SqliteStore(empty_vault).open()
    record(store, group("a@x.com", "z@x.com"), T0)
    record(store, group("a@x.com"), T0 + timedelta(minutes=1))
    later = T0 + timedelta(days=100)
    store.record_checks(CheckRecord([], {}, later, prune_before=later - timedelta(days=90)))
    with sqlite3.connect(empty_vault) as conn:
        assert conn.execute("SELECT count(*) FROM sys_infra_drift_revocation").fetchone() == (0,)
    assert store.revocation_totals()[("lms", "cloudflare_access")].count == 1


OLD_STATE = """
CREATE TABLE sys_infra_drift_state (
    audience TEXT PRIMARY KEY, drift_since TEXT, episode_id INTEGER, last_check_at TEXT,
    expected_count INTEGER, actual_count INTEGER, missing_count INTEGER, extra_count INTEGER,
    error_since TEXT, consecutive_errors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sys_infra_drift_member (
    audience TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('missing', 'extra')),
    email TEXT NOT NULL, first_seen_at TEXT NOT NULL, PRIMARY KEY (audience, kind, email)
) WITHOUT ROWID;
INSERT INTO sys_infra_drift_state (audience, drift_since, last_check_at)
    VALUES ('lms-viewer', '2026-11-23T10:00:00Z', '2026-11-25T09:00:00Z');
INSERT INTO sys_infra_drift_member VALUES
    ('lms-viewer', 'missing', 'a@x.com', '2026-11-24T10:00:00Z');
"""


def test_a_database_an_older_version_wrote_is_migrated_and_never_judged_lower(
    empty_vault: Path,
) -> None:
    """Its rows have no side onsets: the episode's start stands in for the sides it shows."""
    with sqlite3.connect(empty_vault) as conn:
        conn.execute(STATE)
        conn.executescript(OLD_STATE)
    store = SqliteStore(empty_vault).open()
    memory = store.memories()["lms-viewer"]
    drift_since = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert (memory.missing_since, memory.extra_since) == (drift_since, None)
    assert memory.observed_at == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert member_seconds(memory).missing == 23 * 3600
    record(store, group(), T0)
    after = store.memories()["lms-viewer"]
    assert after.missing_since == drift_since and after.drift_since == drift_since
    assert member_seconds(after).missing == 24 * 3600
