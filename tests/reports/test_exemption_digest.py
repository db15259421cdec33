"""The digest's exemptions: made and ended within the period, and ending within 7 days."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support.reports import NOW

from exporter.core.exemptions import EXPIRED, Exemption
from exporter.core.model import Side
from exporter.vault import SqliteStore
from reports.digest import build_digest
from reports.history import load_history, period_ending
from reports.render import render_digest

DAY = timedelta(days=1)


def made(email: str, at: object, days: float, reason: str = "contractor") -> Exemption:
    return Exemption(
        "lms-instructors",
        email,
        Side.EXTRA,
        reason,
        "page:jane",
        at,
        at + days * DAY,  # type: ignore[operator, arg-type]
    )


def test_the_digest_lists_exemptions_made_ended_and_ending_soon(history_db: Path) -> None:
    store = SqliteStore(history_db).open()
    store.add_exemption(made("old@example.com", NOW - 20 * DAY, 30))  # made before: ends in 10 d
    store.add_exemption(made("week@example.com", NOW - 3 * DAY, 5))  # made in it: ends in 2 d
    store.add_exemption(made("gone@example.com", NOW - 6 * DAY, 2))  # made and expired in it
    store.end_exemption("lms-instructors", "gone@example.com", NOW, "expiry", EXPIRED)
    store.add_exemption(made("<b>x</b>@example.com", NOW - 2 * DAY, 80, reason="<i>r</i>"))
    history = load_history(store, period_ending("7d", NOW))
    digest = build_digest(history, NOW)
    section = digest.exemptions
    assert [e.email for e in section.made] == [
        "week@example.com",
        "gone@example.com",
        "<b>x</b>@example.com",
    ]
    [ended] = section.ended
    assert (ended.email, ended.end_reason, ended.ended_at) == (
        "gone@example.com",
        "expired",
        NOW - 4 * DAY,  # at its end date, not when the expiry pass marked it
    )
    assert [e.email for e in section.ending_soon] == ["week@example.com"]  # old@: 10 d away
    mail = render_digest(digest, "http://vault-drift.example")
    assert "EXEMPTIONS" in mail.text and "Ending within 7 days: 1" in mail.text
    assert "week@example.com (extra) until" in mail.text and "by page:jane: contractor" in mail.text
    assert "&lt;b&gt;x&lt;/b&gt;@example.com" in mail.html and "<i>r</i>" not in mail.html
    assert ">Exemptions<" in mail.html or "Exemptions</" in mail.html


def test_no_exemption_no_section(history_db: Path) -> None:
    digest = build_digest(
        load_history(SqliteStore(history_db).open(), period_ending("7d", NOW)), NOW
    )
    assert not digest.exemptions.any
    assert "EXEMPTIONS" not in render_digest(digest, "http://x").text
