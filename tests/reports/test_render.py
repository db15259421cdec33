"""Rendered mail compared byte for byte with tests/golden/reports (UPDATE_GOLDEN=1 rewrites)."""

from __future__ import annotations

import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

from support.reports import NOW, PUBLIC_URL, assert_golden, remembered_snapshot

from exporter.vault import SqliteStore
from reports.digest import build_digest
from reports.history import load_history, period_ending
from reports.notify import critical_alerts, resolution_notes
from reports.render import fix_link, render_critical, render_digest, render_resolved

EVIL = "<script>alert(1)</script>"
EVIL_EMAIL = '"><img src=x onerror=alert(2)>@evil.example'


def digest_mail(db: Path, period: str = "7d"):  # type: ignore[no-untyped-def]
    store = SqliteStore(db).open()
    digest = build_digest(load_history(store, period_ending(period, NOW)), NOW)
    return render_digest(digest, PUBLIC_URL)


def critical_mail(db: Path):  # type: ignore[no-untyped-def]
    store = SqliteStore(db).open()
    unmailed = store.episodes_awaiting_critical_mail()
    (alert,) = critical_alerts(remembered_snapshot(store), unmailed, NOW)
    return render_critical(alert, PUBLIC_URL)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")


def test_digest_golden(history_db: Path) -> None:
    mail = digest_mail(history_db)
    assert mail.subject == "[TPB Vault] Drift digest (weekly): 2 drift, 1 error, 2/6 in sync"
    assert_golden("digest-7d.html", mail.html)
    assert_golden("digest-7d.txt", mail.text)


def test_digest_html_fits_mail_clients(history_db: Path) -> None:
    html = digest_mail(history_db).html
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "style" not in parser.tags and "link" not in parser.tags
    assert parser.images == ["cid:drift-chart"]
    assert "class=" not in html  # inline CSS only
    assert "table" in parser.tags and "div" not in parser.tags[:5]


def test_critical_mail_golden(history_db: Path) -> None:
    mail = critical_mail(history_db)
    # lms-admin is critical by its extra members: the mail says it is an exposure.
    assert mail.subject == '[TPB Vault] Drift detected in "lms-admin" (exposure)'
    assert "Duration: 2 days 2 hours" in mail.text
    assert "Kind: an exposure - Cloudflare lets in people Vault does not grant" in mail.text
    assert "Missing users: alice@example.com, bob@example.com" in mail.text
    assert f"Click here to fix: {PUBLIC_URL}/#audience-lms-admin" in mail.text
    assert mail.text.endswith("---\nTPB Vault IAM Console\n")
    assert_golden("critical.html", mail.html)
    assert_golden("critical.txt", mail.text)


def test_resolution_mail_golden(history_db: Path) -> None:
    with sqlite3.connect(history_db) as conn:
        conn.execute(
            "UPDATE sys_infra_drift_episode SET critical_notified_at = '2026-11-19T20:00:00Z'"
            " WHERE id = 2"
        )
    conn.close()
    (note,) = resolution_notes(SqliteStore(history_db).open().episodes_awaiting_resolution_note())
    mail = render_resolved(note, PUBLIC_URL)
    assert mail.subject == '[TPB Vault] Drift resolved in "crm-sales"'
    assert "fixed by a sync from vault-drift (bob@tpb.ai)" in mail.text
    assert "Lasted: 1 day 12 hours" in mail.text
    assert_golden("resolved.html", mail.html)
    assert_golden("resolved.txt", mail.text)


def test_the_digest_shows_why_a_missing_member_still_has_or_lacks_access(
    history_db: Path,
) -> None:
    notes = {
        "alice@example.com": "has access through the domain rule example.com",
        "bob@example.com": "excluded in Cloudflare",
    }
    with sqlite3.connect(history_db) as conn:
        conn.executemany(
            "UPDATE sys_infra_drift_member SET note = ? WHERE audience = 'lms-admin'"
            " AND kind = 'missing' AND email = ?",
            [(note, email) for email, note in notes.items()],
        )
    conn.close()
    mail = digest_mail(history_db)
    expected = (
        "alice@example.com (has access through the domain rule example.com),"
        " bob@example.com (excluded in Cloudflare)"
    )
    assert f"missing (2): {expected}" in mail.text
    assert expected in mail.html
    critical = critical_mail(history_db)  # the critical mail of lms-admin says it too
    assert f"Missing users: {expected}" in critical.text and expected in critical.html


def _make_evil(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        for table in ("sys_infra_state", "sys_infra_drift_state", "sys_infra_drift_member"):
            conn.execute(f"UPDATE {table} SET audience = ? WHERE audience = 'lms-admin'", (EVIL,))
        conn.execute("UPDATE sys_infra_drift_episode SET audience = ? WHERE id = 7", (EVIL,))
        conn.execute("UPDATE sys_infra_drift_member SET email = ? WHERE email = 'bob@example.com'",
                     (EVIL_EMAIL,))  # fmt: skip
    conn.close()


def test_user_data_is_escaped_in_html(history_db: Path) -> None:
    _make_evil(history_db)
    for mail in (digest_mail(history_db), critical_mail(history_db)):
        assert "<script" not in mail.html and "<img src=x" not in mail.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;@evil.example" in mail.html
        assert EVIL in mail.text  # text/plain shows it as it is: nothing interprets it
    critical = critical_mail(history_db)
    assert critical.subject == f'[TPB Vault] Drift detected in "{EVIL}" (exposure)'
    assert re.search(
        r'href="[^"]*#audience-%3Cscript%3Ealert%281%29%3C%2Fscript%3E"', critical.html
    )


def test_fix_link_points_at_the_operator_page() -> None:
    assert (
        fix_link("https://d.example/", "lms viewer") == "https://d.example/#audience-lms%20viewer"
    )
