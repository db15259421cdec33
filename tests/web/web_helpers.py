"""Building the web app from real collaborators, for the web tests."""

from __future__ import annotations

from pydantic import SecretStr

from exporter.clock import FixedClock
from exporter.metrics import build_exposition
from exporter.service.checker import Engine
from exporter.service.syncer import Syncer
from exporter.web.app import Services
from exporter.web.auth import Tokens

ADMIN = "admin-token-0123456789"
READ = "read-token-0123456789ab"


def services_for(
    engine: Engine, syncer: Syncer, clock: FixedClock, admin: str | None = ADMIN
) -> Services:
    exposition, counters = build_exposition(
        lambda: engine.snapshot, engine.cloudflare.stats.snapshot, clock
    )
    engine.events = counters
    return Services(
        engine=engine,
        syncer=syncer,
        exposition=exposition,
        tokens=Tokens(SecretStr(admin) if admin else None, SecretStr(READ)),
        clock=clock,
        public_url="http://127.0.0.1:9847",
        session_secret="test-session-secret",
    )


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
