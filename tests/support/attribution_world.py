"""The sample world with attribution on, a dashboard edit by a named person already read:
what the page shows beside a member someone added by hand (test and screenshot share it)."""

from __future__ import annotations

from pathlib import Path

import requests
from pydantic import SecretStr

from exporter.cloudflare.client import CloudflareClient
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.metrics import build_exposition
from exporter.service import assemble
from exporter.vault import SqliteStore
from exporter.web import create_app
from exporter.web.auth import Tokens
from exporter.web.deps import WebServices
from support import FixedClock
from support.page_world import READ_TOKEN, World

ADMIN = "page-admin-token-0123456789"
JANE = "jane@corp.example"
CONTRACTOR = "contractor@example.org"


def attributed_world(
    tmp_path: Path, simulator: CloudflareSimulator, session: requests.Session, clock: FixedClock
) -> World:
    """A first check at ``clock``; Jane adds a contractor in the dashboard 5 minutes later;
    the next check (15 minutes) reads the audit log and names her; checks go on, two hours
    after her edit the page is shown."""
    simulator.audit.clock = clock
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    cloudflare = CloudflareClient(
        base_url=simulator.base_url,
        account_id="demo-account",
        token="demo-token",
        session=session,
        timeout=5.0,
    )
    bundle = assemble(SqliteStore(path).open(), cloudflare, clock=clock, attribution=True)
    checker = bundle.checker
    checker.check_all("startup")
    clock.advance(minutes=5)
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    include = [*admins["include"], {"email": {"email": CONTRACTOR}}]
    simulator.set_include(admins["id"], include, by=JANE)
    clock.advance(minutes=10)
    checker.check_all("schedule")
    clock.advance(minutes=110)
    checker.check_all("schedule")
    exposition, _ = build_exposition(
        lambda: checker.snapshots.current, cloudflare.stats.snapshot, clock
    )
    services = WebServices.around(
        bundle,
        exposition,
        Tokens(SecretStr(ADMIN), SecretStr(READ_TOKEN)),
        clock=clock,
        session_secret="page-tests-secret",
    )
    return World(path, simulator, checker, services, create_app(services))
