"""The operator page at 300 audiences in a real headless Chromium: accessibility (axe-core),
the keyboard alone, and JavaScript turned off.

axe-core comes from ``axe-playwright-python`` (its bundled ``axe.min.js``, no download at
run time); no view may have a serious or critical violation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect
from support.page_world import ADMIN_TOKEN, READ_TOKEN, login
from support.scale_world import LARGE, LiveServer, PageScaleWorld, serve_scale_world

from exporter.demo.simulator import CloudflareSimulator

pytestmark = pytest.mark.browser
expect.set_options(timeout=8_000)
Scale = tuple[PageScaleWorld, str]
SERIOUS = ("serious", "critical")


def start_scale(tmp: Path) -> Iterator[Scale]:
    with CloudflareSimulator(per_page_cap=100) as simulator, requests.Session() as session:
        world, served, _ = serve_scale_world(tmp, simulator, session, ADMIN_TOKEN, READ_TOKEN)
        with LiveServer(served.app) as server:
            yield world, server.url


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    """One world for the tests that only look."""
    yield from start_scale(tmp_path_factory.mktemp("scale"))


@pytest.fixture
def fresh_scale(tmp_path: Path) -> Iterator[Scale]:
    """A world of its own, for a test that acts."""
    yield from start_scale(tmp_path)


def serious_violations(page: Any, within: str | None = None) -> list[str]:
    """axe's serious and critical findings on the page, or only ``within`` a part of it (what
    an overlay adds once the whole page behind it was checked: axe takes ~7 s at 300 cards)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page, context=within).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def test_no_serious_accessibility_violation_in_any_view(scale: Scale, browser_page: Any) -> None:
    _, url = scale
    page = browser_page
    page.goto(url + "/login")
    assert serious_violations(page) == [], "login"
    login(page, url, ADMIN_TOKEN)
    assert serious_violations(page) == [], "list"
    page.locator("#in-sync summary").click()
    expect(page.locator("#in-sync tbody tr")).to_have_count(260)
    assert serious_violations(page) == [], "list with the in-sync table open"
    page.locator('[data-action="toggle-alerts"]').click()
    assert serious_violations(page, "#alerts") == [], "alerts dropdown"
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Settings", exact=True).click()
    expect(page.get_by_role("dialog", name="Settings")).to_be_visible()
    assert serious_violations(page, "#settings-dialog") == [], "settings dialog"
    page.keyboard.press("Escape")
    large = page.locator(f'article[data-audience="{LARGE}"]')
    large.get_by_role("button", name="Ignore", exact=True).click()
    expect(page.get_by_role("dialog", name=f"Ignore the drift of “{LARGE}”")).to_be_visible()
    assert serious_violations(page, "#ignore-dialog") == [], "ignore dialog"
    page.keyboard.press("Escape")
    large.locator(".actions").get_by_role("button", name="View Details").click()
    expect(large.locator(".details-body")).to_contain_text("of 1000")
    assert serious_violations(page, f'article[data-audience="{LARGE}"]') == [], "details panel"
    page.goto(f"{url}/details?audience={LARGE}&offset=900")
    assert serious_violations(page) == [], "details page"


def test_the_first_screen_shows_the_count_and_the_first_cards(
    scale: Scale, browser_page: Any
) -> None:
    _, url = scale
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    expect(page.locator("#action-count")).to_be_in_viewport()
    expect(page.locator("#action-count")).to_have_text("40")
    expect(page.locator("article[data-audience]").first).to_be_in_viewport(ratio=0.5)
    expect(page.locator("#alerts .badge-count")).to_have_text("35")  # 30 drifting, 5 errors


def focus_by_tab(page: Any, target: Any, limit: int = 400, key: str = "Tab") -> None:
    """Press Tab (only) until ``target`` has the focus."""
    handle = target.element_handle()
    for _ in range(limit):
        if page.evaluate("(el) => document.activeElement === el", handle):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{target} never got the focus with {key}")


def test_every_action_works_with_the_keyboard_alone(fresh_scale: Scale, browser_page: Any) -> None:
    world, url = fresh_scale
    page = browser_page
    page.goto(url + "/login")
    expect(page.get_by_label("Token")).to_be_focused()  # autofocus
    page.keyboard.type(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/")
    # The badge's dropdown, then Ignore… from it: the dialog, a reason, Enter.
    focus_by_tab(page, page.locator('[data-action="toggle-alerts"]'))
    page.keyboard.press("Enter")
    first = page.locator("#alerts-menu li").first
    focus_by_tab(page, first.get_by_role("button", name="Ignore…"))
    audience = first.get_by_role("button", name="Ignore…").get_attribute("data-audience")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Ignore the drift of “{audience}”")
    expect(dialog.get_by_label("Ignore for")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type("planned migration")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#alerts .badge-count")).to_have_text("34")
    # Settings from the header: a dialog; Escape closes it and gives the focus back.
    settings = page.get_by_role("button", name="Settings", exact=True)
    focus_by_tab(page, settings, key="Shift+Tab")
    page.keyboard.press("Enter")
    form = page.get_by_role("dialog", name="Settings")
    expect(form.get_by_label("Check interval")).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("10m")
    focus_by_tab(page, form.get_by_role("button", name="Save Settings"))
    page.keyboard.press("Enter")
    expect(form.locator("#settings-panel")).to_have_text("Settings saved.")
    page.keyboard.press("Escape")
    expect(settings).to_be_focused()
    # Sync Now on the first card: the dry run, then Confirm (focused), then Enter.
    card = page.locator("article[data-audience]").first
    name = card.get_attribute("data-audience")
    focus_by_tab(page, card.get_by_role("button", name="Sync Now"))
    page.keyboard.press("Enter")
    expect(card.get_by_role("button", name="Confirm sync")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f'#in-sync tr[data-audience="{name}"]')).to_have_count(1)
    expect(page.locator("#announce")).to_be_focused()
    # The details of the large audience, page after page, with Space on a link-button.
    large = page.locator(f'article[data-audience="{LARGE}"]')
    focus_by_tab(page, large.locator(".actions").get_by_role("button", name="View Details"))
    page.keyboard.press(" ")
    expect(large.locator(".details-body")).to_contain_text("(1\N{EN DASH}100 of 1000)")
    focus_by_tab(page, large.get_by_role("button", name="Next →"))
    page.keyboard.press("Enter")
    expect(large.locator(".details-body")).to_contain_text("(101\N{EN DASH}200 of 1000)")
    expect(large.get_by_role("button", name="Next →")).to_be_focused()
    # The in-sync table opens from its summary.
    focus_by_tab(page, page.locator("#in-sync summary"))
    page.keyboard.press("Enter")
    expect(page.locator("#in-sync")).to_have_attribute("open", "")
    # Filters: the status select and the search box, then the Filter button.
    focus_by_tab(page, page.get_by_label("Status"), key="Shift+Tab")
    page.keyboard.press("ArrowDown")  # Drift
    page.keyboard.press("ArrowDown")  # Error
    focus_by_tab(page, page.get_by_role("button", name="Filter"))
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/?status=error&namespace=&q=")
    errored = page.locator("article[data-audience]").first
    focus_by_tab(page, errored.get_by_role("button", name="Retry"))
    page.keyboard.press("Enter")
    expect(errored.locator(".panel")).to_contain_text("checked, now error")
    page.goto(url + "/?status=pending")
    pending = page.locator("article[data-audience]").first
    name = pending.get_attribute("data-audience")
    focus_by_tab(page, pending.get_by_role("button", name="Create group"))
    page.keyboard.press("Enter")
    expect(page.locator("#announce")).to_contain_text(f"{name}: Cloudflare group created")
    assert name in world.pending


def test_without_javascript_lists_filters_and_forms_still_work(
    fresh_scale: Scale, chromium: Any
) -> None:
    world, url = fresh_scale
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(8_000)
    page = context.new_page()
    try:
        login(page, url, ADMIN_TOKEN)
        expect(page.locator("article[data-audience]")).to_have_count(8)
        page.get_by_role("link", name="5 sync errors").click()
        expect(page).to_have_url(url + "/?status=error")
        expect(page.locator("article.card-error")).to_have_count(5)
        page.get_by_label("Status").select_option("")
        page.get_by_label("Audience name").fill("students")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("article[data-audience]")).to_have_count(1)
        page.locator("#in-sync summary").click()  # <details>: no script needed
        page.goto(url + "/")
        page.get_by_role("link", name="Next →").click()
        expect(page).to_have_url(url + "/?offset=8")
        large = f'article[data-audience="{LARGE}"]'
        page.goto(url + "/")
        page.locator(large).get_by_role("link", name="View Details").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(LARGE)
        page.get_by_role("link", name="Next →").click()
        expect(page.locator(".details-body")).to_contain_text("(101\N{EN DASH}200 of 1000)")
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Check interval").fill("5m")
        page.get_by_role("button", name="Save Settings").click()
        expect(page.get_by_text("Settings saved.")).to_be_visible()
        page.goto(url + "/")
        page.locator(large).get_by_role("link", name="Ignore").click()
        page.get_by_label("Reason").fill("known outage")
        page.get_by_role("button", name="Ignore drift").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Ignored {LARGE} until")
        page.goto(url + "/")
        first = page.locator("article[data-audience]").first
        first.get_by_role("button", name="Sync Now").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Dry run (nothing changed yet)")
        page.get_by_role("button", name="Confirm sync").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Sync done")
    finally:
        context.close()
    assert world.drifting


def test_fix_all_force_stop_ignoring_and_logout_with_the_keyboard(
    live: tuple[Any, str], browser_page: Any
) -> None:
    world, url = live
    world.add_extra_emails("administrators", 8)  # a guard will block it: Force… is offered
    world.checker.check_all("test")
    page = browser_page
    login(page, url, ADMIN_TOKEN)
    lms = page.locator('article[data-audience="lms-instructors"]')
    focus_by_tab(page, lms.get_by_role("button", name="Ignore", exact=True))
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.type("until Friday")
    page.keyboard.press("Enter")
    focus_by_tab(page, lms.get_by_role("button", name="Stop ignoring"))
    page.keyboard.press("Enter")
    expect(lms.locator(".panel")).to_contain_text("no longer ignored")
    focus_by_tab(page, page.get_by_role("button", name="Fix All"), key="Shift+Tab")
    page.keyboard.press("Enter")
    panel = page.locator("#fixall-panel")
    expect(panel).to_contain_text("blocked: the sync would remove 8 of 10 members")
    expect(panel.get_by_role("button", name="Confirm sync")).to_be_focused()
    focus_by_tab(page, panel.get_by_role("button", name="Force…"))
    page.keyboard.press("Enter")
    expect(panel.get_by_role("button", name="Confirm forced sync")).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel).to_contain_text("Sync done")
    expect(page.locator("#widget")).to_contain_text("0 drift detected")
    focus_by_tab(page, page.get_by_role("button", name="Logout"), key="Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/login")
