"""Helpers of the reports tests: constants, golden files, a loopback SMTP server."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reports.example import EXAMPLE_NOW
from reports.mail import SmtpSettings

NOW = EXAMPLE_NOW
PUBLIC_URL = "https://vault-drift.example.com"
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "reports"
SMTP_USER, SMTP_PASSWORD = "drift-bot", "s3cret-Pa55word"


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/reports/<name> byte for byte; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert actual.encode("utf-8") == path.read_bytes(), f"{name} differs from its golden file"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
