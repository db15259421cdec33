"""Building the web app from real collaborators, for the web tests."""

from __future__ import annotations

from pydantic import SecretStr
from support import FixedClock

from exporter.metrics import build_exposition
from exporter.service.checker import Checker
from exporter.service.operator import Operator
from exporter.service.syncer import Syncer
from exporter.web.auth import Tokens
from exporter.web.services import WebServices

ADMIN = "admin-token-0123456789"
READ = "read-token-0123456789ab"


def services_for(
    checker: Checker, syncer: Syncer, clock: FixedClock, admin: str | None = ADMIN
) -> WebServices:
    exposition, counters = build_exposition(
        lambda: checker.snapshots.current, checker.cloudflare.stats.snapshot, clock
    )
    checker.events = counters
    return WebServices(
        snapshots=checker.snapshots,
        checker=checker,
        syncer=syncer,
        operator=Operator(checker.vault, checker.snapshots, clock=clock),
        exposition=exposition,
        tokens=Tokens(SecretStr(admin) if admin else None, SecretStr(READ)),
        clock=clock,
        public_url="http://127.0.0.1:9847",
        session_secret="test-session-secret",
    )


def auth(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
