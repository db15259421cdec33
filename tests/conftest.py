"""Shared fixtures: real SQLite Vault databases and the system tools the suite drives."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parent.parent / "exporter" / "sql" / "vault-schema.sql"


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


# -- a sample world: Vault DB + simulated Cloudflare ------------------------------------------

from collections.abc import Iterator  # noqa: E402

from support import T0, FixedClock, make_client, require_tool  # noqa: E402, F401

from exporter.demo.sample import build_sample  # noqa: E402
from exporter.demo.simulator import CloudflareSimulator  # noqa: E402
from exporter.service import Services, assemble  # noqa: E402
from exporter.service.checker import Checker  # noqa: E402
from exporter.service.syncer import Syncer  # noqa: E402
from exporter.vault import SqliteStore  # noqa: E402


@pytest.fixture
def simulator() -> Iterator[CloudflareSimulator]:
    sim = CloudflareSimulator(per_page_cap=50).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def sample_db(tmp_path: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Path:
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    return path


@pytest.fixture
def services(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    """The services around the sample world, as ``serve`` wires them."""
    return assemble(SqliteStore(sample_db).open(), make_client(simulator), clock=clock)


@pytest.fixture
def checker(services: Services) -> Checker:
    return services.checker


@pytest.fixture
def syncer(services: Services) -> Syncer:
    return services.syncer


@pytest.fixture
def cli_env(
    sample_db: Path, simulator: CloudflareSimulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for running the CLI against the sample world."""
    env = {
        "VAULT_DRIFT_DATABASE": str(sample_db),
        "CLOUDFLARE_API_TOKEN": "demo-token",
        "CLOUDFLARE_ACCOUNT_ID": "demo-account",
        "CLOUDFLARE_BASE_URL": simulator.base_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
