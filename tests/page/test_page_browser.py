"""The operator page in a real headless Chromium, against a real uvicorn server on loopback.

Each test gets a fresh world (sample Vault DB, simulated Cloudflare, app) and a fresh
browser context; Chromium itself is launched once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import requests
from playwright.sync_api import expect
from support.page_world import ADMIN_TOKEN, EVIL_AUDIENCE, READ_TOKEN, World, login

pytestmark = pytest.mark.browser
expect.set_options(timeout=8_000)
Live = tuple[World, str]


def card(page: Any, audience: str) -> Any:
    return page.locator(f'article[data-audience="{audience}"]')


def badge_count(page: Any) -> Any:
    return page.locator("#alerts .badge-count")


def in_sync_row(page: Any, audience: str) -> Any:
    return page.locator(f'#in-sync tr[data-audience="{audience}"]')


def api_get(url: str, path: str) -> Any:
    answer = requests.get(url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_login_shows_the_drifting_card(live: Live, browser_page: Any, dialogs: list[str]) -> None:
    _, url = live
    page = browser_page
    page.goto(url + "/")
    expect(page).to_have_url(url + "/login")
    page.get_by_label("Token").fill("wrong-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    login(page, url, ADMIN_TOKEN)
    lms = card(page, "lms-instructors")
    expect(lms.locator(".status")).to_have_text("DRIFT")
    expect(lms).to_contain_text("Vault expects: 8 members")
    expect(lms).to_contain_text("CF Access has: 7 members")
    expect(lms.locator(".members li").filter(has_text="bob@example.com")).to_contain_text(
        "(added in Vault 2 h ago)"
    )
    expect(lms).to_contain_text("olduser@example.com")
    expect(page.locator("#drift-list .provider")).to_contain_text("Last check: just now")
    page.locator('[data-action="toggle-alerts"]').click()
    expect(page.locator("#alerts-menu")).to_contain_text("lms-instructors (2 missing, 1 extra)")
    expect(page.locator("#alerts-menu")).to_contain_text("sales-team (API error)")
    assert dialogs == []


def test_dry_run_then_sync_turns_in_sync(live: Live, browser_page: Any) -> None:
    world, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    page.evaluate("window.__sameDocument = true")
    lms = card(page, "lms-instructors")
    lms.get_by_role("button", name="Sync Now").click()
    panel = lms.locator(".panel")
    expect(panel).to_contain_text("would add 2 (alice@example.com, bob@example.com)")
    expect(panel).to_contain_text("would remove 1 (olduser@example.com)")
    emails = world.simulator.group(world.group_id("lms-instructors"))["include"]
    assert {"email": {"email": "bob@example.com"}} not in emails  # a dry run changed nothing
    panel.get_by_role("button", name="Confirm sync").click()
    expect(in_sync_row(page, "lms-instructors")).to_have_count(1)  # in sync: a row, no card
    expect(lms).to_have_count(0)
    expect(page.locator("#announce")).to_contain_text("lms-instructors: added 2")
    expect(page.locator("#announce")).to_be_focused()
    assert page.evaluate("window.__sameDocument") is True  # refreshed without a reload
    emails = world.simulator.group(world.group_id("lms-instructors"))["include"]
    assert {"email": {"email": "bob@example.com"}} in emails
    with sqlite3.connect(world.path) as conn:
        rows = conn.execute("SELECT trigger, actor, result FROM sys_infra_drift_audit").fetchall()
    assert rows == [("page", "page:admin", "synced")]


def test_guarded_sync_is_blocked_then_forced(live: Live, browser_page: Any) -> None:
    world, url = live
    world.add_extra_emails("administrators", 8)
    world.checker.check_all("test")
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    admins = card(page, "administrators")
    admins.get_by_role("button", name="Sync Now").click()
    panel = admins.locator(".panel")
    expect(panel).to_contain_text("blocked: the sync would remove 8 of 10 members")
    expect(panel.get_by_role("button", name="Confirm sync")).to_have_count(0)
    panel.get_by_role("button", name="Force…").click()
    expect(panel).to_contain_text("forced: guards off")
    expect(panel).to_contain_text("would remove 8")
    panel.get_by_role("button", name="Confirm forced sync").click()
    expect(in_sync_row(page, "administrators")).to_have_count(1)
    expect(page.locator("#announce")).to_contain_text("removed 8")
    with sqlite3.connect(world.path) as conn:
        forced = conn.execute("SELECT forced, removed_count FROM sys_infra_drift_audit").fetchall()
    assert forced == [(1, 8)]


def test_ignore_drops_the_badge_then_stop_ignoring(live: Live, browser_page: Any) -> None:
    _, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    expect(badge_count(page)).to_have_text("3")
    lms = card(page, "lms-instructors")
    lms.get_by_role("button", name="Ignore", exact=True).click()
    dialog = page.get_by_role("dialog", name="Ignore the drift of “lms-instructors”")
    dialog.get_by_label("Ignore for").select_option("4h")
    dialog.get_by_label("Reason").fill("contractor <b>onboarding</b>")
    dialog.get_by_role("button", name="Ignore drift").click()
    expect(dialog).to_be_hidden()
    expect(badge_count(page)).to_have_text("2")
    expect(lms.locator(".ignored")).to_contain_text("— contractor <b>onboarding</b>")
    expect(lms.locator(".ignored")).to_contain_text("Ignored until 20")
    assert api_get(url, "/iam/drift/lms-instructors")["ignore_reason"] == (
        "contractor <b>onboarding</b>"
    )
    lms.get_by_role("button", name="Stop ignoring").click()
    expect(badge_count(page)).to_have_text("3")
    expect(lms.locator(".ignored")).to_have_count(0)


def test_settings_saved_and_applied(live: Live, browser_page: Any) -> None:
    _, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    page.get_by_role("button", name="Settings", exact=True).click()
    form = page.get_by_role("dialog", name="Settings").locator("#settings-form")
    form.get_by_label("Warning after").fill("3d")
    form.get_by_role("button", name="Save Settings").click()
    expect(form.locator('[data-error-for="warning_threshold_seconds"]')).to_contain_text(
        "must be less than critical"
    )
    form.get_by_label("Check interval").fill("ten minutes")
    form.get_by_role("button", name="Save Settings").click()
    expect(form.locator('[data-error-for="check_interval_seconds"]')).to_contain_text(
        "duration like"
    )
    form.get_by_label("Check interval").fill("10m")
    form.get_by_label("Warning after").fill("2h")
    form.get_by_label("Critical after").fill("2d")
    form.get_by_label("Extra members: warning").fill("10m")
    form.get_by_label("Extra members: critical").fill("5400")
    form.get_by_label("Auto-sync").select_option("remove_only")
    form.get_by_role("button", name="Save Settings").click()
    expect(page.locator("#settings-panel")).to_have_text("Settings saved.")
    expect(form.get_by_label("Critical after")).to_have_value("48h")
    expect(form.get_by_label("Extra members: critical")).to_have_value("90m")
    settings = api_get(url, "/iam/drift/settings")
    assert settings["check_interval_seconds"] == 600
    assert settings["warning_threshold_seconds"] == 7200
    assert settings["critical_threshold_seconds"] == 172800
    assert settings["extra_warning_threshold_seconds"] == 600
    assert settings["extra_critical_threshold_seconds"] == 5400
    assert settings["auto_sync"] == "remove_only"


def test_read_only_login_cannot_act(live: Live, browser_page: Any) -> None:
    _, url = live
    page = browser_page
    login(page, url, READ_TOKEN)
    expect(page.locator(".notice")).to_contain_text("Read-only session")
    page.get_by_role("button", name="Settings", exact=True).click()  # opens, read-only
    for name in ("Sync Now", "Fix All", "Retry", "Create group", "Ignore", "Save Settings"):
        buttons = page.get_by_role("button", name=name, exact=True)
        assert buttons.count() >= 1, name
        for index in range(buttons.count()):
            expect(buttons.nth(index)).to_be_disabled()
    page.keyboard.press("Escape")
    lms = card(page, "lms-instructors")
    lms.get_by_role("button", name="View Details").click()  # reading still works
    expect(lms.locator(".details-body")).to_contain_text("bob@example.com")
    status = page.evaluate(
        """async () => {
          const csrf = document.querySelector('meta[name="csrf-token"]').content;
          const r = await fetch('/iam/drift/sync', {method: 'POST', headers: {
            'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({audience: 'lms-instructors'})});
          return r.status;
        }"""
    )
    assert status == 403


def test_logged_out_requests_are_refused(live: Live, browser_page: Any) -> None:
    _, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    page.get_by_role("button", name="Logout").click()
    expect(page).to_have_url(url + "/login")
    page.goto(url + "/")
    expect(page).to_have_url(url + "/login")
    status = page.evaluate(
        "async () => (await fetch('/iam/drift/sync', {method: 'POST', headers: "
        "{'Content-Type': 'application/json'}, body: '{\"all\": true}'})).status"
    )
    assert status == 401


def test_injected_name_is_inert(live: Live, browser_page: Any, dialogs: list[str]) -> None:
    _, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    evil = page.locator("article[data-audience]").filter(has_text="onerror")
    expect(evil.locator("h3 .name")).to_have_text(EVIL_AUDIENCE)
    expect(evil).to_contain_text("<script>alert(2)</script>@evil.example.com")
    evil.get_by_role("button", name="View Details").click()
    expect(evil.locator(".details-body")).to_contain_text("<script>alert(2)</script>")
    evil.get_by_role("button", name="Sync Now").click()
    evil.get_by_role("button", name="Confirm sync").click()
    expect(page.locator("#in-sync tr").filter(has_text="onerror")).to_have_count(1)
    expect(page.locator("#in-sync th.name").filter(has_text="onerror")).to_have_text(EVIL_AUDIENCE)
    page.locator('[data-action="toggle-alerts"]').click()
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # only /static/page.js
    assert dialogs == []


def test_fix_all_and_the_thirty_second_refresh(live: Live, browser_page: Any) -> None:
    world, url = live
    page = browser_page
    page.clock.install()
    login(page, url, ADMIN_TOKEN)
    page.get_by_role("button", name="Fix All").click()
    panel = page.locator("#fixall-panel")
    expect(panel).to_contain_text("lms-instructors: would add 2")
    panel.get_by_role("button", name="Confirm sync").click()
    expect(panel).to_contain_text("Sync done")
    expect(page.locator("#widget")).to_contain_text("0 drift detected")
    # Someone edits a group by hand; the next check sees it; the page shows it within 30 s.
    world.add_extra_emails("developers", 1)
    world.checker.check_all("test")
    expect(in_sync_row(page, "developers")).to_have_count(1)
    page.clock.run_for(31_000)
    expect(card(page, "developers").locator(".status")).to_have_text("DRIFT")
    expect(page.locator("#widget")).to_contain_text("1 drift detected")


def test_retry_and_create_group(live: Live, browser_page: Any) -> None:
    _, url = live
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    sales = card(page, "sales-team")
    sales.get_by_role("button", name="Retry").click()
    expect(sales.locator(".panel")).to_contain_text("sales-team: checked, now error")
    viewer = card(page, "lms-viewer")
    viewer.get_by_role("button", name="Create group").click()
    expect(in_sync_row(page, "lms-viewer")).to_have_count(1)
    expect(page.locator("#announce")).to_contain_text("Cloudflare group created")
