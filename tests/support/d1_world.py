"""The sample world on three Vault backends: a SQLite file, the simulated D1, workerd's D1.

The fixtures that hand it out are in ``conftest.py``.

``backend`` is parametrised over the three, so a scenario written once runs on each. The
workerd one is miniflare from npm (pinned by ``gateway/package-lock.json``, installed by
``make test``) behind ``gateway/gateway.mjs``; it fails, not skips, under CI=true when
missing. One workerd process serves the whole session; each test wipes and reloads its
database through the REST routes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.d1 import D1Client
from exporter.demo.d1_simulator import D1Faults, D1Simulator
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import Services, assemble
from exporter.vault import SqliteStore, VaultStore
from exporter.vault.d1 import D1Store
from support import IN_CI, T0, FixedClock, free_port, require_tool

GATEWAY = Path(__file__).resolve().parents[1] / "d1" / "gateway"
DATABASE_ID = "00000000-0000-4000-8000-0000000000d1"
BACKENDS = ["file", "sim", "workerd"]


@dataclass
class Workerd:
    url: str  # http://127.0.0.1:PORT (the gateway), base URL .../client/v4
    process: subprocess.Popen[str]

    @property
    def base_url(self) -> str:
        return f"{self.url}/client/v4"

    def control(self, route: str, document: dict[str, Any]) -> None:
        requests.post(f"{self.url}/_gw/{route}", json=document, timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{self.url}/_gw/stats", timeout=10).json()
        return answer


def start_workerd(persist: Path) -> Workerd:
    require_tool("node")
    if not (GATEWAY / "node_modules" / "miniflare").is_dir():
        message = "miniflare is not installed (make test runs npm ci in tests/d1/gateway)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    options = {
        "port": free_port(),
        "persist": str(persist),
        "account_id": "demo-account",
        "database_id": DATABASE_ID,
        "token": "demo-token",
    }
    process = subprocess.Popen(
        ["node", str(GATEWAY / "server.mjs"), json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise AssertionError("workerd's D1 gateway did not start")
    return Workerd(json.loads(line)["url"], process)


def rest(base_url: str, statements: list[tuple[str, list[Any]]]) -> list[Any]:
    """Statements through D1's REST batch route, as vault-api's own writes (no budget)."""
    url = f"{base_url}/accounts/demo-account/d1/database/{DATABASE_ID}/raw"
    body = {"batch": [{"sql": sql, "params": params} for sql, params in statements]}
    answer = requests.post(
        url, json=body, headers={"Authorization": "Bearer demo-token"}, timeout=60
    ).json()
    assert answer["success"], answer
    return [item["results"]["rows"] for item in answer["result"]]


def load_into_d1(base_url: str, source: Path) -> None:
    """Wipe the D1 database, then copy a SQLite file's schema and rows into it."""
    with sqlite3.connect(source) as conn:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
        indexes = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        present = rest(base_url, [("SELECT name FROM sqlite_master WHERE type = 'table'", [])])[0]
        drops = [
            (f'DROP TABLE IF EXISTS "{name}"', [])
            for (name,) in present
            if not name.startswith(("_cf_", "sqlite_"))
        ]
        statements: list[tuple[str, list[Any]]] = [("PRAGMA defer_foreign_keys = on", []), *drops]
        statements += [(sql, []) for _, sql in tables] + [(sql, []) for (sql,) in indexes]
        for name, _ in tables:
            cursor = conn.execute(f'SELECT * FROM "{name}"')
            width = len(cursor.description)
            rows = cursor.fetchall()
            per = max(1, 99 // width)
            for start in range(0, len(rows), per):
                chunk = rows[start : start + per]
                marks = ", ".join(["(" + ", ".join("?" * width) + ")"] * len(chunk))
                params = [value for row in chunk for value in row]
                statements.append((f'INSERT INTO "{name}" VALUES {marks}', params))
    for start in range(0, len(statements), 500):
        rest(base_url, statements[start : start + 500])


@dataclass
class World:
    """The sample world on one backend, and the levers the scenarios pull."""

    kind: str
    simulator: CloudflareSimulator
    clock: FixedClock
    path: Path  # the SQLite file (file and sim backends; workerd: the source it was loaded from)
    base_url: str  # where the exporter's clients go (both APIs)
    d1_sim: D1Simulator | None = None
    gateway: Workerd | None = None
    stores: list[VaultStore] = field(default_factory=list)

    @property
    def is_d1(self) -> bool:
        return self.kind != "file"

    @property
    def database(self) -> str:
        return f"d1://{DATABASE_ID}" if self.is_d1 else str(self.path)

    def env(self) -> dict[str, str]:
        return {
            "VAULT_DRIFT_DATABASE": self.database,
            "CLOUDFLARE_API_TOKEN": "demo-token",
            "CLOUDFLARE_ACCOUNT_ID": "demo-account",
            "CLOUDFLARE_BASE_URL": self.base_url,
        }

    def cloudflare(self) -> CloudflareClient:
        return CloudflareClient(
            base_url=self.simulator.base_url,
            account_id="demo-account",
            token="demo-token",
            timeout=5.0,
        )

    def store(self, cloudflare: CloudflareClient | None = None, **options: Any) -> VaultStore:
        if not self.is_d1:
            store: VaultStore = SqliteStore(self.path).open()
        else:
            cloudflare = cloudflare or self.cloudflare()
            client = D1Client(
                base_url=self.base_url,
                account_id="demo-account",
                database_id=DATABASE_ID,
                token="demo-token",
                gate=cloudflare.rate_gate,
                stats=cloudflare.stats,
                timeout=5.0,
            )
            store = D1Store(client, **options).open()
        self.stores.append(store)
        return store

    def services(self, **options: Any) -> Services:
        cloudflare = self.cloudflare()
        return assemble(self.store(cloudflare, **options), cloudflare, clock=self.clock)

    def sql(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read or change the Vault as vault-api would (outside the exporter)."""
        if self.gateway is not None:
            return [tuple(r) for r in rest(self.gateway.base_url, [(sql, list(params))])[0]]
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def fail_next_write(self) -> Callable[[], None]:
        """Make the next write fail at its last statement; returns how to undo it."""
        if self.d1_sim is not None:
            self.d1_sim.faults = D1Faults(fail_next_batch_at=-1)
            return lambda: setattr(self.d1_sim, "faults", D1Faults())
        if self.gateway is not None:
            self.gateway.control("faults", {"fail_batch_at": -1})
            return lambda: self.gateway.control("faults", {}) if self.gateway else None
        trigger = (
            "CREATE TRIGGER vault_drift_test_fail BEFORE INSERT ON sys_infra_drift_cycle"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        self.sql(trigger)
        return lambda: self.sql("DROP TRIGGER IF EXISTS vault_drift_test_fail") and None

    def d1_fault(self, status: int, code: int, message: str, times: int = 1) -> None:
        """The next D1 request(s) answer this error (sim or workerd)."""
        if self.gateway is not None:
            self.gateway.control(
                "faults",
                {"status": status, "code": code, "message": message, "times": times},
            )
            return
        assert self.d1_sim is not None
        if status == 429:
            self.d1_sim.faults = D1Faults(rate_429=1.0, times=times)
        else:
            self.d1_sim.faults = D1Faults(
                rate_transient=1.0, times=times, message=message, status=status
            )

    def lose_answers(self, count: int) -> None:
        """The next ``count`` writes are committed, then answered 500 "Network connection lost"
        (an answer lost on its way back from D1; sim or workerd)."""
        if self.gateway is not None:
            self.gateway.control("faults", {"lose_answers": count})
            return
        assert self.d1_sim is not None
        self.d1_sim.faults = D1Faults(lose_next_answers=count)

    def access_requests(self) -> int:
        """Requests the simulated Access API answered (D1's are served beside them)."""
        return sum(1 for _, path, _ in self.simulator.request_log if "/access/" in path)

    def clear_d1_faults(self) -> None:
        if self.gateway is not None:
            self.gateway.control("faults", {})
        elif self.d1_sim is not None:
            self.d1_sim.faults = D1Faults()


def make_world(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Iterator[World]:
    clock = FixedClock(T0)
    simulator = CloudflareSimulator(per_page_cap=50).start()
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    world = World(kind, simulator, clock, path, simulator.base_url)
    if kind == "sim":
        world.d1_sim = D1Simulator(path, database_id=DATABASE_ID)
        simulator.attach_d1(world.d1_sim)
    elif kind == "workerd":
        gateway = request.getfixturevalue("workerd")
        gateway.control("faults", {})
        gateway.control("upstream", {"url": simulator.base_url})
        load_into_d1(gateway.base_url, path)
        world.gateway, world.base_url = gateway, gateway.base_url
    try:
        yield world
    finally:
        simulator.stop()
        if world.d1_sim is not None:
            world.d1_sim.close()
