"""Shared fixtures: real SQLite Vault databases and the system tools the suite drives."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parent.parent / "exporter" / "sql" / "vault-schema.sql"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of a system tool; under CI=true a missing tool fails the test instead of skipping."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    message = f"{name} is not installed (make test installs it: scripts/install-system-tools)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def empty_vault(tmp_path: Path) -> Path:
    """A fresh Vault database file built from the reference schema."""
    path = tmp_path / "vault.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA.read_text())
    return path


@pytest.fixture
def vault_factory(tmp_path: Path) -> Callable[[str], Path]:
    """Build named Vault databases from the reference schema (several per test)."""

    def build(name: str = "vault.db") -> Path:
        path = tmp_path / name
        with sqlite3.connect(path) as conn:
            conn.executescript(SCHEMA.read_text())
        return path

    return build
