"""Fixtures of the operator page tests: a fresh world per test, one Chromium per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import require_tool
from support.page_world import CHROMIUM_ARGS, World, build_world
from support.scale_world import LiveServer

from exporter.demo.simulator import CloudflareSimulator


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def world(tmp_path: Path, simulator: CloudflareSimulator, http_session: requests.Session) -> World:
    return build_world(tmp_path, simulator, http_session)


@pytest.fixture
def live(world: World) -> Iterator[tuple[World, str]]:
    with LiveServer(world.app) as server:
        yield world, server.url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    executable = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh context and page, every wait bounded."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def dialogs(browser_page: Any) -> list[str]:
    """Messages of every dialog the page opened (an injected alert() would land here)."""
    opened: list[str] = []

    def on_dialog(dialog: Any) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    browser_page.on("dialog", on_dialog)
    return opened
