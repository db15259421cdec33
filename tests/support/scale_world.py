"""A real account's scale for the operator page: 300 audiences (Cloudflare's limit per account).

30 drifting, 5 in error, 5 pending, 260 in sync; one drifting audience misses 1,000 members.
Shared by ``bench/page_scale.py`` (the figures of docs/benchmarks.md) and ``tests/page/``
(the structure asserted at that size). Drift is made the way it happens: the groups start in
sync, then Cloudflare is edited in three waves, each followed by a real full check, so the
drifting audiences have different ages and so different alert levels (critical, warning,
info), and their members different hints.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from exporter.core.times import format_time
from exporter.demo.sample import create_schema
from exporter.demo.simulator import CloudflareSimulator

NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
NAMESPACES = ("lms", "sales", "hr", "finance", "eng", "ops", "support", "legal", "data", "web")
ROLES = ("admins", "editors", "viewers", "instructors", "analysts", "reviewers")
LARGE = "lms-students-00"  # the audience with 1,000 missing members
LARGE_MISSING = 1000
# Waves of drift: (how long before NOW, which drifting audiences start then). With the
# default thresholds the first wave is critical, the second a warning, the third info. The
# large audience drifts from the first check (30 h: critical).
WAVES = ((timedelta(hours=30), range(0, 8)), (timedelta(hours=3), range(8, 20)))
LAST_WAVE = timedelta(minutes=10)  # drifting audiences 20..29


@dataclass
class Counts:
    drifting: int = 30
    errors: int = 5
    pending: int = 5
    in_sync: int = 260

    @property
    def total(self) -> int:
        return self.drifting + self.errors + self.pending + self.in_sync


@dataclass
class SteppedClock:
    """The world's clock: set by the waves, then left at ``NOW`` for the page."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class PageScaleWorld:
    """What was built: audience names by kind, and the staged Cloudflare edits."""

    drifting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    in_sync: list[str] = field(default_factory=list)
    namespace: dict[str, str] = field(default_factory=dict)
    _edits: dict[int, list[tuple[str, list[dict[str, Any]]]]] = field(default_factory=dict)

    def settle(self, check_all: Callable[[], Any], clock: SteppedClock) -> None:
        """Apply the waves of manual edits, each followed by a full check, ending at NOW."""
        steps = [*(before for before, _ in WAVES), LAST_WAVE, timedelta(0)]
        for index, before in enumerate(steps):
            clock.now = NOW - before
            for group_id, include in self._edits.get(index, []):
                self._simulator.set_include(group_id, include)
            check_all()
        clock.now = NOW

    _simulator: Any = None


def name_of(index: int) -> str:
    namespace = NAMESPACES[index % len(NAMESPACES)]
    return f"{namespace}-{ROLES[(index // len(NAMESPACES)) % len(ROLES)]}-{index:02d}"


def build_page_world(
    path: Path, simulator: CloudflareSimulator, counts: Counts | None = None
) -> PageScaleWorld:
    """Write the Vault DB at ``path`` and the groups into ``simulator``; call ``settle`` next."""
    counts = counts or Counts()
    world = PageScaleWorld(_simulator=simulator)
    create_schema(path)
    with sqlite3.connect(path) as conn:
        for index in range(counts.total):
            name = LARGE if index == 0 else name_of(index)
            world.namespace[name] = name.split("-", 1)[0]
            if index < counts.drifting:
                world.drifting.append(name)
            elif index < counts.drifting + counts.errors:
                world.errors.append(name)
            elif index < counts.drifting + counts.errors + counts.pending:
                world.pending.append(name)
            else:
                world.in_sync.append(name)
            _audience(conn, world, simulator, index, name)
    return world


def _audience(
    conn: sqlite3.Connection,
    world: PageScaleWorld,
    simulator: CloudflareSimulator,
    index: int,
    name: str,
) -> None:
    size = 4 + index % 17
    emails = [f"{name}.user{m:02d}@example.com" for m in range(size)]
    added = [NOW - timedelta(days=40 + m) for m in range(size)]
    if name == LARGE:  # 600 long-standing members never pushed, 400 added just before
        emails = [f"student{m:04d}@example.com" for m in range(LARGE_MISSING + 4)]
        start = NOW - WAVES[0][0]
        added = [
            start - (timedelta(minutes=10) if 600 <= m < LARGE_MISSING else timedelta(days=90))
            for m in range(len(emails))
        ]
    _vault_audience(conn, index, name, list(zip(emails, added, strict=True)))
    group_id: str | None
    if name in world.pending:
        group_id = None
    elif name in world.errors:
        group_id = f"00000000-0000-4000-8000-{index:012d}"  # a group deleted in Cloudflare
    else:
        pushed = emails[LARGE_MISSING:] if name == LARGE else emails
        group_id = simulator.add_group(name, _rules(pushed))
    if name in world.drifting and name != LARGE:  # the large one drifts from the first check
        _stage_drift(world, index, name, emails, group_id)
    conn.execute(
        "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id,"
        " provider_resource_type, sync_status) VALUES (?, ?, 'cloudflare_access', ?,"
        " 'access_group', 'pending')",
        (name, world.namespace[name], group_id),
    )


def _stage_drift(
    world: PageScaleWorld, index: int, name: str, emails: list[str], group_id: str | None
) -> None:
    """The manual edit that makes ``name`` drift, in its wave: a few members removed by hand,
    a few strangers added, or both."""
    assert group_id is not None
    wave = next((w for w, (_, members) in enumerate(WAVES) if index in members), len(WAVES))
    removed = 1 + index % 3 if index % 4 != 1 else 0
    kept = emails[removed:]
    if index % 4 in (1, 2):  # strangers: 12 on one audience, one or two elsewhere
        count = 12 if index == 1 else 1 + index % 2
        kept = [*kept, *(f"contractor{k}.{index:02d}@partner.example.org" for k in range(count))]
    world._edits.setdefault(wave, []).append((group_id, _rules(kept)))


def _rules(emails: list[str]) -> list[dict[str, Any]]:
    return [{"email": {"email": email}} for email in emails]


def _vault_audience(
    conn: sqlite3.Connection, index: int, name: str, members: list[tuple[str, datetime]]
) -> None:
    org, group = f"org-{index}", f"g-{index}"
    conn.execute("INSERT INTO iam_organization (id, name) VALUES (?, ?)", (org, name))
    conn.execute(
        "INSERT INTO iam_group (id, organization_id, name) VALUES (?, ?, ?)", (group, org, name)
    )
    conn.execute(
        "INSERT INTO iam_application (id, organization_id, name, audiences) VALUES (?, ?, ?, ?)",
        (f"app-{index}", org, name, json.dumps([name])),
    )
    conn.executemany(
        "INSERT INTO iam_user (id, email, status, created_at) VALUES (?, ?, 'active', ?)",
        [(email, email, format_time(at)) for email, at in members],
    )
    conn.executemany(
        "INSERT INTO iam_user_group (user_id, group_id, created_at) VALUES (?, ?, ?)",
        [(email, group, format_time(at)) for email, at in members],
    )


@dataclass
class Served:
    """The real app around a Vault file and a simulator, as ``serve`` assembles it."""

    app: Any
    checker: Any
    services: Any


def app_around(
    path: Path,
    simulator: CloudflareSimulator,
    session: Any,
    clock: Callable[[], datetime],
    admin: str | None,
    read: str | None,
) -> Served:
    from pydantic import SecretStr

    from exporter.cloudflare.client import CloudflareClient
    from exporter.metrics import build_exposition
    from exporter.service import assemble
    from exporter.vault import SqliteStore
    from exporter.web import create_app
    from exporter.web.auth import Tokens
    from exporter.web.deps import WebServices

    client = CloudflareClient(
        base_url=simulator.base_url,
        account_id=simulator.account_id,
        token="demo-token",
        session=session,
        timeout=5.0,
    )
    bundle = assemble(SqliteStore(path).open(), client, clock=clock)
    checker = bundle.checker
    exposition, _ = build_exposition(
        lambda: checker.snapshots.current, client.stats.snapshot, clock
    )
    services = WebServices.around(
        bundle,
        exposition,
        Tokens(SecretStr(admin) if admin else None, SecretStr(read) if read else None),
        clock=clock,
        session_secret="page-tests-secret",
    )
    return Served(create_app(services), checker, services)


def serve_scale_world(
    tmp: Path,
    simulator: CloudflareSimulator,
    session: Any,
    admin: str,
    read: str | None = None,
    counts: Counts | None = None,
) -> tuple[PageScaleWorld, Served, SteppedClock]:
    """The 300-audience world, checked in its waves, with the app in front of it."""
    clock = SteppedClock()
    world = build_page_world(tmp / "vault.db", simulator, counts)
    served = app_around(tmp / "vault.db", simulator, session, clock, admin, read)
    world.settle(lambda: served.checker.check_all("startup"), clock)
    return world, served, clock


class LiveServer:
    """The app under a real uvicorn on 127.0.0.1 (random port), in a thread."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
