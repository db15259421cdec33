"""The sample world (Vault file + simulated Cloudflare) with AWS audiences on moto beside it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr
from support import FixedClock, make_client

from exporter.aws.identity_store import IdentityStoreClient
from exporter.aws.provider import IdentityCenter
from exporter.demo.simulator import CloudflareSimulator
from exporter.metrics import build_exposition
from exporter.service import Services, assemble
from exporter.vault import SqliteStore
from exporter.web import create_app
from exporter.web.auth import Tokens
from exporter.web.deps import WebServices

ADMIN = "admin-token-0123456789"


def mixed_services(
    database: Path,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    aws: IdentityStoreClient | None,
) -> Services:
    """As ``serve`` wires them: Cloudflare always, AWS when a client is given."""
    return assemble(
        SqliteStore(database).open(),
        make_client(simulator),
        clock=clock,
        providers=[IdentityCenter(aws)] if aws is not None else [],
    )


def api_client(services: Services, clock: FixedClock, *, page: bool = False) -> TestClient:
    exposition, counters = build_exposition(
        lambda: services.snapshots.current,
        services.cloudflare.stats.snapshot,
        clock,
        provider_stats=services.providers.request_stats,
    )
    services.checker.events = services.syncer.events = counters
    web = WebServices.around(
        services,
        exposition,
        Tokens(SecretStr(ADMIN), None),
        clock=clock,
        public_url="http://127.0.0.1:9847",
        session_secret="test-session-secret",
    )
    return TestClient(create_app(web, page=page), follow_redirects=False)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def logged_in(client: TestClient) -> TestClient:
    """The page's session for the admin token (login form, CSRF, cookie)."""
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post("/login", data={"token": ADMIN, "csrf": csrf.group(1)})
    assert answer.status_code == 303, answer.text
    return client
