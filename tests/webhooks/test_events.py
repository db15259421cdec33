"""Every event type, from the real check and sync services on the sample world, delivered to
a receiver on loopback that verifies it with ``standardwebhooks``; no member email in a URL."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from support import FixedClock, make_client
from support.webhook_receiver import WebhookReceiver

from exporter.clock import utc_now
from exporter.core.signing import decode_secret
from exporter.core.webhooks import Announcer, destination_key, sessions_revoked_event
from exporter.demo.simulator import CloudflareSimulator
from exporter.runtime.wiring import WakeDelivery
from exporter.service import Services, assemble
from exporter.service.syncer import SyncRequest
from exporter.vault import SqliteStore
from exporter.vault.store import CheckRecord
from exporter.webhooks.delivery import Dispatcher, Receiver
from exporter.webhooks.transport import HttpTransport
from exporter.webhooks.worker import DeliveryWorker

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-events!").decode()
PAGE = "https://drift.example.com"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
def hook_url(receiver: WebhookReceiver) -> str:
    return receiver.url("/hooks/iam?token=s3cr3t-path-token")


@pytest.fixture
def announced(
    sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock, hook_url: str
) -> Services:
    ids = count(1)
    announcer = Announcer((destination_key(hook_url),), PAGE, lambda: f"msg_{next(ids)}")
    store = SqliteStore(sample_db).open()
    return assemble(store, make_client(simulator), clock=clock, announcer=announcer)


def sender(services: Services, url: str) -> Dispatcher:
    """Signs with the wall clock: the receiver checks the timestamp is recent."""
    return Dispatcher(
        services.vault, [Receiver(url)], decode_secret(SECRET), HttpTransport(), clock=utc_now
    )


def group_id(simulator: CloudflareSimulator, name: str) -> str:
    return str(next(g["id"] for g in simulator.groups() if g["name"] == name))


def test_every_event_type_is_delivered_signed_in_order_per_audience(
    announced: Services,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    receiver: WebhookReceiver,
    hook_url: str,
    sample_db: Path,
) -> None:
    cycle = announced.cycle  # every trigger of serve goes through it
    cycle.check_all("schedule")  # lms-instructors drifts (2 missing, 1 extra); sales-team error
    clock.advance(hours=2)
    cycle.check_all("schedule")  # its extra member is now past the 1 h critical threshold
    strangers = [{"email": {"email": f"stranger{i}@example.com"}} for i in range(6)]
    developers = group_id(simulator, "developers")
    simulator.set_include(developers, simulator.group(developers)["include"] + strangers)
    cycle.check_audiences(["developers"], "api")
    cycle.sync(SyncRequest(["developers"], actor="jane"))  # 6 removals of 11: blocked
    cycle.sync(SyncRequest(["lms-instructors"], actor="jane"))  # applied, and resolved
    revoked = sessions_revoked_event(
        "lms-instructors", "lms", "cloudflare_access", ["olduser@example.com"], "sync",
        clock(), PAGE,
    )  # fmt: skip
    store = announced.vault
    outbox = announced.announcements.entries([revoked])  # as the revocation's write will
    store.record_checks(CheckRecord(checks=[], previous={}, at=clock(), outbox=outbox))
    with sqlite3.connect(sample_db) as conn:  # the receiver's URL (and its token) stays out
        dump = "\n".join(conn.iterdump())
    assert "s3cr3t-path-token" not in dump and receiver.base_url not in dump

    sender(announced, hook_url).run_once()
    got = receiver.taken()
    assert all(d.verified for d in receiver.all()) and len(got) == len(list(receiver.all()))
    by_audience = {
        audience: [d.type for d in got if d.body and d.body["data"]["audience"] == audience]
        for audience in ("lms-instructors", "developers")
    }
    assert by_audience == {
        "lms-instructors": [
            "drift.opened",
            "drift.level_changed",
            "sync.applied",
            "drift.resolved",
            "sessions.revoked",
        ],
        "developers": ["drift.opened", "sync.blocked"],
    }
    assert len({d.webhook_id for d in got}) == len(got)
    bodies = {(d.type, d.body["data"]["audience"]): d.body for d in got if d.body}
    escalated = bodies[("drift.level_changed", "lms-instructors")]["data"]
    assert (escalated["previous_level"], escalated["level"]) == ("info", "critical")
    applied = bodies[("sync.applied", "lms-instructors")]["data"]
    assert applied["added"] == ["alice@example.com", "bob@example.com"]
    assert applied["removed"] == ["olduser@example.com"]
    assert applied["attribution"] == {"actor": "jane", "trigger": "api"}
    resolved = bodies[("drift.resolved", "lms-instructors")]["data"]
    assert resolved["reason"] == "sync" and resolved["status"] == "synced"
    blocked = bodies[("sync.blocked", "developers")]["data"]
    assert blocked["blocked_reason"] == "mass_removal" and len(blocked["removed"]) == 6
    assert store.outbox(10) == ([], 0)

    # No member email in any URL: not in a request's target, not in a body's link.
    for delivery in receiver.all():
        assert "@" not in delivery.path
        assert delivery.body is not None and "@" not in delivery.body["data"]["url"]
        assert delivery.body["data"]["url"].startswith(PAGE + "/details?audience=")


def test_no_receiver_no_outbox(services: Services) -> None:
    """Without a receiver nothing is written: an outbox nobody reads would only grow."""
    services.cycle.check_all("schedule")
    services.cycle.sync(SyncRequest(["lms-instructors"]))
    assert services.vault.outbox(10) == ([], 0)


def test_a_restart_does_not_announce_an_open_drift_again(
    announced: Services,
    sample_db: Path,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    hook_url: str,
) -> None:
    announced.cycle.check_all("schedule")
    rows, _ = announced.vault.outbox(10)
    assert [r.entry.type for r in rows] == ["drift.opened"]
    again = assemble(
        SqliteStore(sample_db).open(),
        make_client(simulator),
        clock=clock,
        announcer=announced.announcements.announcer,
    )
    clock.advance(minutes=1)
    again.cycle.check_all("schedule")
    assert len(again.vault.outbox(10)[0]) == 1


class StuckTransport:
    """A receiver that never answers until released (a hung TCP peer)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.entered.set()
        self.release.wait(30)
        return 204


def test_a_hung_receiver_never_holds_a_check(
    announced: Services, clock: FixedClock, hook_url: str, simulator: CloudflareSimulator
) -> None:
    transport = StuckTransport()
    dispatcher = Dispatcher(
        announced.vault,
        [Receiver(hook_url)],
        decode_secret(SECRET),
        transport,
        clock=utc_now,
    )
    worker = DeliveryWorker(dispatcher, idle=60).start()
    announced.cycle.followers.append(WakeDelivery(worker))  # as serve's wiring does
    try:
        announced.cycle.check_all("schedule")  # drift.opened: the cycle wakes the worker
        assert transport.entered.wait(10)  # long before its idle minute
        developers = group_id(simulator, "developers")
        simulator.set_include(developers, [])
        clock.advance(minutes=1)
        started = time.monotonic()
        snapshot = announced.cycle.check_all("schedule")  # while the worker is stuck
        assert time.monotonic() - started < 10
        assert str(snapshot.checks["developers"].status) == "drift"
        assert len(announced.vault.outbox(10)[0]) == 2  # persisted, waiting its turn
    finally:
        transport.release.set()
        worker.stop()


def test_a_sync_that_reached_cloudflare_before_a_crash_is_announced_when_settled(
    announced: Services, sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    """Its ``sync.applied`` was to be written with the audit's outcome, which the crash cut
    short: the restart's recovery writes both. A sync that never reached it says nothing."""
    announced.cycle.check_all("schedule")
    gid = group_id(simulator, "lms-instructors")
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM sys_infra_drift_outbox")
        for added in ('["alice@example.com"]', '["nobody@example.com"]'):
            conn.execute(
                "INSERT INTO sys_infra_drift_audit (started_at, audience, action, trigger, actor,"
                " mode, group_id, added, result) VALUES ('2026-11-25T09:00:00Z',"
                " 'lms-instructors', 'sync', 'page', 'jane', 'full', ?, ?, 'in_progress')",
                (gid, added),
            )
    include = simulator.group(gid)["include"] + [{"email": {"email": "alice@example.com"}}]
    simulator.set_include(gid, include)
    clock.advance(minutes=1)
    assert announced.cycle.settle_interrupted() == 2
    rows, size = announced.vault.outbox(10)
    assert size == 1 and rows[0].entry.type == "sync.applied"
    data = json.loads(rows[0].entry.body)["data"]
    assert data["added"] == ["alice@example.com"] and data["namespace"] == "lms"
    assert data["attribution"] == {"actor": "jane", "trigger": "page"}
