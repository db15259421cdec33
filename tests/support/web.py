"""Building the web app from real collaborators, for the web tests."""

from __future__ import annotations

from pydantic import SecretStr

from exporter.metrics import build_exposition
from exporter.service import Services
from exporter.web.auth import Tokens
from exporter.web.deps import WebServices
from support import FixedClock

ADMIN = "admin-token-0123456789"
READ = "read-token-0123456789ab"


def services_for(services: Services, clock: FixedClock, admin: str | None = ADMIN) -> WebServices:
    exposition, counters = build_exposition(
        lambda: services.snapshots.current, services.cloudflare.stats.snapshot, clock
    )
    services.checker.events = services.syncer.events = counters
    return WebServices(
        snapshots=services.snapshots,
        cycle=services.cycle,
        decisions=services.decisions,
        exposition=exposition,
        tokens=Tokens(SecretStr(admin) if admin else None, SecretStr(READ)),
        clock=clock,
        public_url="http://127.0.0.1:9847",
        session_secret="test-session-secret",
    )


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
