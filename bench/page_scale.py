"""The operator page at a real account's scale, in Chromium through Playwright.

python -m bench.page_scale            # the figures of docs/benchmarks.md (300 audiences)
python -m bench.page_scale --small    # a quick run (the test suite's smoke check)

The world is ``support/scale_world.py``'s (tests/): 300 audiences (30 drifting, one missing 1,000
members; 5 in error, 5 pending, 260 in sync), served by the real app under uvicorn on
loopback, read by Debian's Chromium at 1280 x 900. Measured: the size of ``/``, its server
time, the time until the page is interactive (Navigation Timing's domContentLoadedEventEnd:
the deferred script has run and bound its handlers), the page's height in screens, what the
first screen shows, the same for the details view of the large audience, and axe-core's
violations per view (when axe-playwright-python is installed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import requests
from support.scale_world import LARGE, Counts, LiveServer, serve_scale_world

from exporter.demo.simulator import CloudflareSimulator

ADMIN = "bench-admin-token-0123456789"
VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
TIMING = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {response_end: n.responseEnd, dom_interactive: n.domInteractive,
          interactive: n.domContentLoadedEventEnd, load: n.loadEventEnd};
}"""
SCREEN = """() => {
  const h = innerHeight;
  const cards = [...document.querySelectorAll("article[data-audience]")];
  const count = document.getElementById("action-count");
  const box = count && count.getBoundingClientRect();
  return {
    height_px: document.documentElement.scrollHeight,
    screens: Math.round(document.documentElement.scrollHeight / h * 100) / 100,
    cards: cards.length,
    cards_in_first_screen: cards.filter((c) => c.getBoundingClientRect().top < h).length,
    count_in_first_screen: box ? box.top >= 0 && box.bottom <= h : null,
    count_text: count ? count.parentElement.textContent.replace(/\\s+/g, " ").trim() : null,
  };
}"""


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def login(page: Any, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#token", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def loads(page: Any, url: str, rounds: int) -> dict[str, Any]:
    """``rounds`` fresh navigations to ``url``: bytes, and Navigation Timing in ms."""
    timings, size = [], 0
    for _ in range(rounds):
        response = page.goto(url, wait_until="load")
        size = len(response.body())
        timings.append(page.evaluate(TIMING))
    return {
        "html_bytes": size,
        "response_end_ms": summary([t["response_end"] for t in timings]),
        "interactive_ms": summary([t["interactive"] for t in timings]),
        "load_ms": summary([t["load"] for t in timings]),
    }


def axe_counts(page: Any) -> dict[str, int] | None:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:  # pragma: no cover - the test extras install it
        return None
    counts: dict[str, int] = {}
    for violation in Axe().run(page).response["violations"]:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + 1
    return counts


def measure(url: str, rounds: int, chromium: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{url}/login")
            axe = {"login": axe_counts(page)}
            login(page, url)
            result: dict[str, Any] = {"list": loads(page, f"{url}/", rounds)}
            result["list"]["screen"] = page.evaluate(SCREEN)
            axe["list"] = axe_counts(page)
            if page.locator("#in-sync summary").count():
                page.click("#in-sync summary")
                result["list"]["height_in_sync_open_px"] = page.evaluate(SCREEN)["height_px"]
            if page.locator('[data-action="settings"]').count():
                page.click('[data-action="settings"]')
                axe["settings"] = axe_counts(page)
            details = f"{url}/details?audience={LARGE}"
            result["details"] = loads(page, details, rounds)
            result["details"]["screen"] = page.evaluate(SCREEN)
            axe["details"] = axe_counts(page)
            result["axe_violations_by_impact"] = axe
        finally:
            browser.close()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    counts = Counts(drifting=3, errors=1, pending=1, in_sync=10) if args.small else Counts()
    rounds = args.rounds or (2 if args.small else 15)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=100) as simulator,
        requests.Session() as session,
    ):
        _, served, _ = serve_scale_world(Path(tmp), simulator, session, ADMIN, counts=counts)
        with LiveServer(served.app) as server:
            result = {"audiences": counts.total, "rounds": rounds, "viewport": VIEWPORT}
            result.update(measure(server.url, rounds, args.chromium))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
