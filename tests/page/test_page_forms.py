"""Every action of the page as a plain form, as a browser without JavaScript posts it.

Same session, roles and CSRF as the script's calls: the ``csrf`` field must be the session's,
a read-only session is refused, and nothing is written when either check fails.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from fastapi.testclient import TestClient
from support.page_world import ADMIN_TOKEN, READ_TOKEN, World
from test_page_http import logged_in, page_csrf


def audit(world: World) -> list[tuple[str, ...]]:
    with sqlite3.connect(world.path) as conn:
        return conn.execute(
            "SELECT audience, trigger, actor, result, forced FROM sys_infra_drift_audit"
        ).fetchall()


def post(client: TestClient, action: str, **fields: str) -> tuple[int, str]:
    answer = client.post(f"/forms/{action}", data={"csrf": page_csrf(client), **fields})
    return answer.status_code, answer.text


def emails(world: World, group: str) -> set[str]:
    include = world.simulator.group(world.group_id(group))["include"]
    return {rule["email"]["email"] for rule in include if "email" in rule}


def test_sync_now_shows_the_dry_run_then_confirms(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    html = client.get("/").text
    assert re.search(r'<form method="post" action="/forms/sync" class="act">', html)
    status, preview = post(client, "sync", audience="lms-instructors")
    assert status == 200 and "Dry run (nothing changed yet)" in preview
    assert "would add 2 (alice@example.com, bob@example.com)" in preview
    assert "would remove 1 (olduser@example.com)" in preview
    assert '<input type="hidden" name="confirm" value="1">' in preview
    assert "bob@example.com" not in emails(world, "lms-instructors") and audit(world) == []
    status, done = post(client, "sync", audience="lms-instructors", confirm="1")
    assert status == 200 and "Sync done" in done and "added 2" in done
    assert "bob@example.com" in emails(world, "lms-instructors")
    assert audit(world) == [("lms-instructors", "page", "page:admin", "synced", 0)]


def test_a_blocked_sync_offers_force_then_confirms_it(world: World) -> None:
    world.add_extra_emails("administrators", 8)
    world.checker.check_all("test")
    client = logged_in(world, ADMIN_TOKEN)
    _, preview = post(client, "sync", audience="administrators")
    assert "blocked: the sync would remove 8 of 10 members" in preview
    assert "Confirm sync" not in preview and ">Force…</button>" in preview
    _, forced = post(client, "sync", audience="administrators", force="1")
    assert "Dry run (forced: guards off)" in forced and "Confirm forced sync" in forced
    _, done = post(client, "sync", audience="administrators", force="1", confirm="1")
    assert "removed 8" in done
    assert audit(world) == [("administrators", "page", "page:admin", "synced", 1)]


def test_fix_all_previews_every_drifting_audience(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    _, preview = post(client, "sync", all="1")
    assert "<strong>lms-instructors</strong>:" in preview and "would add 2" in preview
    assert '<input type="hidden" name="all" value="1">' in preview and audit(world) == []


def test_retry_create_group_ignore_and_stop_ignoring(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    _, retried = post(client, "retry", audience="sales-team")
    assert "Checked sales-team: now error" in retried
    _, created = post(client, "create-group", audience="lms-viewer")
    assert "Cloudflare group created; status now synced." in created
    form = client.get("/ignore", params={"audience": "lms-instructors"}).text
    assert 'action="/forms/ignore"' in form and '<option value="24h" selected>' in form
    status, refused = post(client, "ignore", audience="lms-instructors", duration="24h")
    assert status == 422 and "give a reason" in refused
    _, ignored = post(
        client, "ignore", audience="lms-instructors", duration="4h", reason="onboarding"
    )
    assert "Ignored lms-instructors until 20" in ignored and "— onboarding" in ignored
    assert world.services.snapshots.current.ignores["lms-instructors"].reason == "onboarding"
    html = client.get("/").text
    assert "Ignored until" in html and 'action="/forms/unignore"' in html
    _, stopped = post(client, "unignore", audience="lms-instructors")
    assert "lms-instructors is no longer ignored." in stopped
    assert "lms-instructors" not in world.services.snapshots.current.ignores


def test_settings_saved_or_each_error_shown_by_its_field(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    fields = {
        "check_interval_seconds": "10m",
        "warning_threshold_seconds": "3d",
        "critical_threshold_seconds": "1d",
        "extra_warning_threshold_seconds": "ten",
        "extra_critical_threshold_seconds": "1h",
        "auto_sync": "remove_only",
    }
    status, invalid = post(client, "settings", **fields)
    assert status == 422
    assert re.search(r'data-error-for="extra_warning_threshold_seconds">write a duration', invalid)
    assert 'value="ten"' in invalid  # what was typed stays, to be corrected
    fields.update(extra_warning_threshold_seconds="10m")
    status, invalid = post(client, "settings", **fields)
    assert status == 422 and "must be less than critical" in invalid
    fields.update(warning_threshold_seconds="2h")
    status, saved = post(client, "settings", **fields)
    assert status == 200 and "Settings saved." in saved
    settings = world.services.snapshots.current.settings
    assert settings.check_interval_seconds == 600 and settings.auto_sync == "remove_only"


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("sync", {"audience": "lms-instructors", "confirm": "1"}),
        ("retry", {"audience": "sales-team"}),
        ("create-group", {"audience": "lms-viewer"}),
        ("ignore", {"audience": "lms-instructors", "duration": "1h", "reason": "x"}),
        ("settings", {"check_interval_seconds": "1m", "auto_sync": "full"}),
    ],
)
def test_forms_need_an_admin_session_and_its_csrf(
    world: World, action: str, fields: dict[str, str]
) -> None:
    reader = logged_in(world, READ_TOKEN)
    status, text = post(reader, action, **fields)
    assert status == 403 and "The read token cannot change anything." in text
    admin = logged_in(world, ADMIN_TOKEN)
    forged = admin.post(f"/forms/{action}", data={"csrf": "forged", **fields})
    assert forged.status_code == 403 and "Missing or invalid CSRF token." in forged.text
    nobody = TestClient(world.app, follow_redirects=False)
    assert nobody.post(f"/forms/{action}", data={"csrf": "x", **fields}).status_code == 401
    assert audit(world) == []
    assert world.services.snapshots.current.ignores == {}
    assert world.services.snapshots.current.settings.check_interval_seconds == 900
    assert world.services.snapshots.current.checks["lms-viewer"].audience.group_id is None


def test_an_unknown_audience_is_a_404_page(world: World) -> None:
    client = logged_in(world, ADMIN_TOKEN)
    status, text = post(client, "sync", audience="nobody")
    assert status == 404 and "No audience has that name." in text
    assert client.get("/ignore", params={"audience": "nobody"}).status_code == 404
