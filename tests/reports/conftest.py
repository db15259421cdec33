"""Fixtures for reports: the example week of history in a real Vault DB, a real SMTP server."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port
from support.example_week import build_example_vault
from support.reports import Inbox, SmtpServer, authenticate

from exporter.vault import SqliteStore


@pytest.fixture
def history_db(tmp_path: Path) -> Path:
    """The example week (support/example_week.py), now = 2026-11-25T08:00:00Z."""
    return build_example_vault(tmp_path / "vault.db")


@pytest.fixture
def history_store(history_db: Path) -> SqliteStore:
    """The Vault store on the example week."""
    return SqliteStore(history_db).open()


@pytest.fixture
def smtp_factory() -> Iterator[Callable[..., SmtpServer]]:
    servers: list[SmtpServer] = []

    def make(start: bool = True, **options: Any) -> SmtpServer:
        server = SmtpServer(free_port(), Inbox(), options)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """Plain SMTP with optional AUTH (no TLS), accepting any mail."""
    return smtp_factory(authenticator=authenticate, auth_require_tls=False)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def starttls_server(
    smtp_factory: Callable[..., SmtpServer], tls_files: tuple[Path, Path]
) -> tuple[SmtpServer, ssl.SSLContext]:
    """SMTP that requires STARTTLS, and a client context trusting its certificate."""
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = smtp_factory(
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticate,
    )
    return server, ssl.create_default_context(cafile=str(cert))
