"""Screenshots of every view of the operator page, for the README and docs/page.md.

Rerun with ``.venv/bin/python tests/page/screenshots.py [OUT_DIR]`` (default docs/screenshots):
it builds the 300-audience world of ``tests/support/scale_world.py`` (30 drifting, 5 in error,
5 pending, 260 in sync), serves it on loopback and drives Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from support.page_world import ADMIN_TOKEN, CHROMIUM_ARGS, login
from support.scale_world import LARGE, LiveServer, serve_scale_world

from exporter.demo.simulator import CloudflareSimulator

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def take(out: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=100) as simulator,
        requests.Session() as http,
    ):
        _, served, _ = serve_scale_world(Path(tmp), simulator, http, ADMIN_TOKEN)
        with LiveServer(served.app) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                return _shots(browser, server.url, out)
            finally:
                browser.close()


def _shots(browser: Any, url: str, out: Path) -> list[Path]:
    taken: list[Path] = []

    def shot(page: Any, name: str, full: bool = False) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        taken.append(path)

    desktop = browser.new_context(viewport=DESKTOP)
    desktop.set_default_timeout(8_000)
    page = desktop.new_page()
    page.goto(f"{url}/login")
    shot(page, "login")
    login(page, url, ADMIN_TOKEN)
    shot(page, "drift-list")  # the first screen
    shot(page, "drift-list-full", full=True)  # the whole page, in sync collapsed
    page.locator('[data-action="toggle-alerts"]').click()
    shot(page, "alerts-dropdown")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Settings", exact=True).click()
    shot(page, "settings-dialog")
    page.keyboard.press("Escape")
    large = page.locator(f'article[data-audience="{LARGE}"]')
    large.get_by_role("button", name="Ignore", exact=True).click()
    shot(page, "ignore-dialog")
    page.keyboard.press("Escape")
    large.locator(".actions").get_by_role("button", name="View Details").click()
    large.locator(".details-body").wait_for()
    large.scroll_into_view_if_needed()
    page.evaluate("(el) => el.scrollIntoView()", large.element_handle())
    shot(page, "details-expanded")
    page.goto(f"{url}/details?audience={LARGE}&offset=100")
    shot(page, "details-page")
    page.goto(f"{url}/?status=drift&namespace=lms")
    shot(page, "filtered")
    page.goto(f"{url}/?status=synced")
    shot(page, "in-sync-table")
    page.goto(f"{url}/")
    first = page.locator("article[data-audience]").nth(1)
    first.get_by_role("button", name="Sync Now").click()
    first.get_by_role("button", name="Confirm sync").wait_for()
    page.evaluate("(el) => el.scrollIntoView()", first.element_handle())
    shot(page, "sync-preview")
    desktop.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=1)
    phone.set_default_timeout(8_000)
    page = phone.new_page()
    login(page, url, ADMIN_TOKEN)
    shot(page, "mobile")
    phone.close()

    plain = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = plain.new_page()
    login(page, url, ADMIN_TOKEN)
    page.locator("article[data-audience]").first.get_by_role("button", name="Sync Now").click()
    shot(page, "no-javascript-sync")
    plain.close()
    return taken


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for written in take(target):
        print(written)
