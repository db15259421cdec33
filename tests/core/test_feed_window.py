"""The change feed's pure parts: the stretch a poll reads, ids already taken, the audiences
touched, the full listing's interval, and the feed's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.core.attribution import GroupChange
from exporter.core.feed import (
    SeenIds,
    audiences_touched,
    full_interval_seconds,
    next_poll_delay,
    poll_window,
)
from exporter.core.settings import Settings, SettingsError, apply_settings

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OVERLAP = timedelta(seconds=120)


def change(log_id: str, group: str = "g1", seconds: float = 0) -> GroupChange:
    return GroupChange(log_id, group, T + timedelta(seconds=seconds))


def test_a_busy_log_is_read_from_its_newest_entry_minus_the_overlap() -> None:
    newest = T - timedelta(seconds=5)
    window = poll_window(newest, T - timedelta(seconds=30), T, OVERLAP)
    assert (window.since, window.before) == (newest - OVERLAP, T)


def test_a_quiet_log_is_not_read_further_and_further_back() -> None:
    last_entry = T - timedelta(days=3)
    window = poll_window(last_entry, T - timedelta(seconds=30), T, OVERLAP)
    assert window.since == T - timedelta(seconds=30) - 2 * OVERLAP
    first = poll_window(None, T, T, OVERLAP)
    assert first.since == T - 2 * OVERLAP


def test_an_entry_seen_twice_is_taken_once_and_forgotten_past_the_overlap() -> None:
    seen = SeenIds()
    assert [c.audit_log_id for c in seen.fresh([change("a"), change("b"), change("a")])] == [
        "a",
        "b",
    ]
    assert seen.fresh([change("a"), change("c", seconds=1)]) == [change("c", seconds=1)]
    seen.forget_before(T + timedelta(seconds=1))
    assert "a" not in seen and "c" in seen and len(seen) == 1
    seen.remember([change("a")])
    assert seen.fresh([change("a")]) == []


def test_only_the_audiences_groups_are_touched() -> None:
    groups = {"g1": "admins", "g2": "devs"}
    changes = [change("1", "g2"), change("2", "other"), change("3", "g1"), change("4", "g2")]
    assert audiences_touched(changes, groups) == ["admins", "devs"]
    assert audiences_touched([change("5", "other")], groups) == []


def test_the_full_listing_is_a_safety_net_only_while_the_feed_is_healthy() -> None:
    settings = Settings(check_interval_seconds=60, full_check_interval_seconds=900)
    assert full_interval_seconds(settings, feed_healthy=True) == 900
    assert full_interval_seconds(settings, feed_healthy=False) == 60
    off = Settings(check_interval_seconds=60, cloudflare_feed="off")
    assert full_interval_seconds(off, feed_healthy=True) == 60


def test_the_feed_settings_have_their_defaults_and_are_validated() -> None:
    document = Settings().as_document()
    assert {k: document[k] for k in document if "feed" in k or k.startswith("full")} == {
        "cloudflare_feed": "audit_log",
        "feed_interval_seconds": 30,
        "feed_overlap_seconds": 120,
        "full_check_interval_seconds": 900,
    }
    changed = apply_settings(Settings(), {"cloudflare_feed": "off", "feed_interval_seconds": 10})
    assert (changed.cloudflare_feed, changed.feed_interval_seconds) == ("off", 10)
    with pytest.raises(SettingsError) as refused:
        apply_settings(
            Settings(),
            {
                "cloudflare_feed": "logpush",
                "feed_interval_seconds": 9,
                "feed_overlap_seconds": -1,
                "full_check_interval_seconds": True,
            },
        )
    assert set(refused.value.problems) == {
        "cloudflare_feed",
        "feed_interval_seconds",
        "feed_overlap_seconds",
        "full_check_interval_seconds",
    }
    assert "audit_log, off" in refused.value.problems["cloudflare_feed"]


def test_polls_start_every_interval_whatever_their_checks_took() -> None:
    # A poll that found an edit and checked it for 12 s: the next starts 30 s after it
    # started, not 30 s after it ended (which would let an edit wait 42 s for its listing).
    assert next_poll_delay(30, 12.0) == 18.0
    assert next_poll_delay(30, 0.2) == pytest.approx(29.8)
    assert next_poll_delay(30, 45.0) == 0.0  # overran: the next one at once
