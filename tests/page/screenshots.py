"""Screenshots of the operator page's main screens, for the README and docs/page.md.

Rerun with ``.venv/bin/python tests/page/screenshots.py [OUT_DIR]`` (default docs/screenshots):
it builds the sample world (without the HTML-injection audience), serves it on loopback and
drives Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from page_world import ADMIN_TOKEN, CHROMIUM_ARGS, LiveServer, build_world, login

from exporter.demo.simulator import CloudflareSimulator

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def take(out: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=50) as simulator,
        requests.Session() as http,
    ):
        world = build_world(Path(tmp), simulator, http, evil=False)
        with LiveServer(world.app) as server, sync_playwright() as playwright:
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
    shot(page, "drift-list")
    page.locator('[data-action="toggle-alerts"]').click()
    shot(page, "alerts-dropdown")
    page.keyboard.press("Escape")
    card = page.locator('article[data-audience="developers"]')
    card.get_by_role("button", name="View Details").click()
    card.locator(".details-body").wait_for()
    card.scroll_into_view_if_needed()
    shot(page, "details-expanded")
    lms = page.locator('article[data-audience="lms-instructors"]')
    lms.get_by_role("button", name="Sync Now").click()
    lms.get_by_role("button", name="Confirm sync").wait_for()
    lms.scroll_into_view_if_needed()
    shot(page, "sync-preview")
    desktop.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=1)
    phone.set_default_timeout(8_000)
    page = phone.new_page()
    login(page, url, ADMIN_TOKEN)
    shot(page, "mobile")
    phone.close()
    return taken


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for written in take(target):
        print(written)
