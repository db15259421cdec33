"""A screenshot of the page with a member attributed from Cloudflare's audit log: the card of
``administrators`` says who added the contractor, in the dashboard, and when.

Rerun with ``.venv/bin/python tests/page/attribution_screenshot.py [OUT_DIR]`` (default
docs/screenshots); like ``screenshots.py`` it serves the world on loopback and drives
Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from support import T0, FixedClock
from support.attribution_world import ADMIN, attributed_world
from support.page_world import CHROMIUM_ARGS, login
from support.scale_world import LiveServer

from exporter.demo.simulator import CloudflareSimulator

ROOT = Path(__file__).resolve().parents[2]


def take(out: Path, chromium: str = "/usr/bin/chromium") -> Path:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    path = out / "attribution.png"
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=50) as simulator,
        requests.Session() as http,
    ):
        world = attributed_world(Path(tmp), simulator, http, FixedClock(T0))
        with LiveServer(world.app) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.set_default_timeout(8_000)
                page = context.new_page()
                login(page, server.url, ADMIN)
                card = page.locator('article[data-audience="administrators"]')
                card.get_by_role("button", name="View Details").click()
                card.locator(".details-body").wait_for()
                card.screenshot(path=str(path))
            finally:
                browser.close()
    return path


if __name__ == "__main__":
    print(take(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"))
