"""The operator page's world: the sample Vault DB, a simulated Cloudflare, the real app,
and a real uvicorn server on loopback for the browser tests."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from fastapi import FastAPI

from exporter.clock import Clock, utc_now
from exporter.demo.sample import add_member, build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.service.checker import Checker
from exporter.web.deps import WebServices
from support.scale_world import app_around

ADMIN_TOKEN = "page-admin-token-0123456789"
READ_TOKEN = "page-read-token-0123456789"
EVIL_AUDIENCE = "<img src=x onerror=alert(1)>"
EVIL_EMAIL = '"><script>alert(2)</script>@evil.example.com'
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class World:
    path: Path
    simulator: CloudflareSimulator
    checker: Checker
    services: WebServices
    app: FastAPI

    def group_id(self, name: str) -> str:
        return next(g["id"] for g in self.simulator.groups() if g["name"] == name)

    def add_extra_emails(self, group: str, count: int) -> None:
        """A manual edit in Cloudflare: ``count`` emails nobody granted in Vault."""
        group_id = self.group_id(group)
        include = self.simulator.group(group_id)["include"]
        extra = [{"email": {"email": f"stray{i}@example.org"}} for i in range(count)]
        self.simulator.set_include(group_id, [*include, *extra])


def add_evil_audience(path: Path, simulator: CloudflareSimulator, now: datetime) -> None:
    """An audience whose name and member email are HTML: both must be shown inert."""
    group_id = simulator.add_group(EVIL_AUDIENCE, [])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO iam_organization (id, name) VALUES ('org-evil', 'evil')")
        conn.execute(
            "INSERT INTO iam_group (id, organization_id, name) VALUES ('g-evil', 'org-evil', 'x')"
        )
        conn.execute(
            "INSERT INTO iam_application (id, organization_id, name, audiences)"
            " VALUES ('app-evil', 'org-evil', 'Evil', ?)",
            (json.dumps([EVIL_AUDIENCE]),),
        )
        add_member(conn, EVIL_EMAIL, "g-evil", now)
        conn.execute(
            "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id,"
            " provider_resource_type) VALUES (?, 'evil', 'cloudflare_access', ?, 'access_group')",
            (EVIL_AUDIENCE, group_id),
        )


def build_world(
    tmp_path: Path,
    simulator: CloudflareSimulator,
    session: requests.Session,
    clock: Clock = utc_now,
    evil: bool = True,
    admin: str | None = ADMIN_TOKEN,
) -> World:
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    if evil:
        add_evil_audience(path, simulator, clock())
    served = app_around(path, simulator, session, clock, admin, READ_TOKEN)
    served.checker.check_all("startup")
    return World(path, simulator, served.checker, served.services, served.app)


def login(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/")


LoginFn = Callable[[Any, str, str], None]
