"""Helpers of the reports tests: constants, golden files, a loopback SMTP server."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from exporter.core.model import AudienceCheck, DriftMember, DriftMemory, Status
from exporter.core.snapshot import Snapshot
from exporter.vault.store import VaultStore
from reports.mail import SmtpSettings
from support import golden
from support.example_week import EXAMPLE_NOW

NOW = EXAMPLE_NOW
PUBLIC_URL = "https://vault-drift.example.com"
SMTP_USER, SMTP_PASSWORD = "drift-bot", "s3cret-Pa55word"


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/reports/<name> (``support.golden``: UPDATE_GOLDEN=1)."""
    golden.assert_golden(f"reports/{name}", actual)


def bare_vault(path: Path) -> Path:
    """A Vault DB with vault-api's tables and none of vault-drift's (it never ran on it)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(files("exporter").joinpath("sql/vault-schema.sql").read_text())
    conn.close()
    return path


@dataclass
class Inbox:
    """What the loopback SMTP server accepted."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; ``start()`` again after ``stop()``."""

    port: int
    inbox: Inbox
    options: dict[str, Any]
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **changes: Any) -> SmtpSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "starttls": False,
            "mail_from": "vault-drift@tpb.example",
            "mail_to": ["admin@tpb.example", "sre@tpb.example"],
            "timeout": 5,
        }
        values.update(changes)
        return SmtpSettings(**values)


def remembered_snapshot(store: VaultStore) -> Snapshot:
    """The snapshot a full check would publish, as far as the store remembers it.

    An audience with a drift onset drifts, with its remembered members; every other audience
    is in sync. Ignores and settings are the stored ones.
    """
    memories = store.memories()
    checks = {}
    for audience in store.audiences():
        memory = memories.get(audience.audience, DriftMemory())
        members = [
            DriftMember(email, kind, seen) for (kind, email), seen in memory.first_seen.items()
        ]
        checks[audience.audience] = AudienceCheck(
            audience=audience,
            status=Status.SYNCED if memory.drift_since is None else Status.DRIFT,
            checked_at=NOW,
            expected_count=0,
            actual_count=0,
            missing=tuple(m for m in members if m.kind == "missing"),
            extra=tuple(m for m in members if m.kind == "extra"),
            memory=memory,
        )
    return Snapshot(checks=checks, ignores=store.ignores(), settings=store.settings())
