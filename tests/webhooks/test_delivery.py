"""Delivering the outbox of a real Vault file to a real receiver on loopback, which verifies
each request with the ``standardwebhooks`` library: retries, 410, other 4xx, order, age."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from support import FixedClock
from support.webhook_receiver import Script, WebhookReceiver

from exporter.clock import utc_now
from exporter.core.signing import decode_secret
from exporter.core.webhooks import Announcer, Event, destination_key
from exporter.vault import SqliteStore
from exporter.vault.store import CheckRecord, VaultError
from exporter.webhooks.delivery import Dispatcher, Policy, Receiver
from exporter.webhooks.transport import HttpTransport

SECRET = "whsec_" + base64.b64encode(b"webhook-test-secret-32-bytes-ok!").decode()


class Tally:
    """The dispatcher's metrics, as counts."""

    def __init__(self) -> None:
        self.results: dict[str, int] = {"ok": 0, "retry": 0, "failed": 0}
        self.size = -1

    def delivered(self, result: str) -> None:
        self.results[result] += 1

    def outbox_size(self, size: int) -> None:
        self.size = size


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
def store(empty_vault: Path) -> SqliteStore:
    return SqliteStore(empty_vault).open()


@pytest.fixture
def wall() -> FixedClock:
    """Near the real time: the receiver refuses signatures more than 5 minutes off."""
    return FixedClock(utc_now())


def enqueue(store: SqliteStore, urls: list[str], *events: Event) -> None:
    ids = count(1 + len(store.outbox(1000)[0]))
    announcer = Announcer(
        tuple(destination_key(u) for u in urls), "http://x", lambda: f"msg_{next(ids)}"
    )
    at = events[0].timestamp
    store.record_checks(
        CheckRecord(checks=[], previous={}, at=at, outbox=tuple(announcer.entries(events)))
    )


def event(audience: str, n: int, at: datetime) -> Event:
    return Event("drift.opened", audience, at, {"audience": audience, "n": n})


def dispatcher(store: SqliteStore, urls: list[str], clock: FixedClock, tally: Tally) -> Dispatcher:
    return Dispatcher(
        store,
        [Receiver(u) for u in urls],
        decode_secret(SECRET),
        HttpTransport(timeout=5),
        clock=clock,
        events=tally,
    )


def test_a_delivery_is_signed_and_leaves_the_outbox(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    url = receiver.url("/hook?team=iam")
    enqueue(store, [url], event("a", 1, wall()))
    tally = Tally()
    assert dispatcher(store, [url], wall, tally).run_once() is None
    (got,) = receiver.taken()
    assert got.verified and got.path == "/hook?team=iam"
    assert got.body == {
        "type": "drift.opened",
        "timestamp": wall().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {"audience": "a", "n": 1},
    }
    assert store.outbox(10) == ([], 0)
    assert tally.results == {"ok": 1, "retry": 0, "failed": 0} and tally.size == 0


def test_retries_keep_the_same_id_and_back_off_doubling(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    receiver.scripts["/hook"] = Script([500, 503, 204])
    url = receiver.url("/hook")
    enqueue(store, [url], event("a", 1, wall()))
    tally = Tally()
    sender = dispatcher(store, [url], wall, tally)
    assert sender.run_once() == 1.0
    assert sender.run_once() == 1.0  # not due yet: nothing sent
    wall.advance(seconds=1)
    assert sender.run_once() == 2.0
    wall.advance(seconds=2)
    assert sender.run_once() is None
    attempts = list(receiver.all())
    assert [d.status for d in attempts] == [500, 503, 204]
    assert {d.webhook_id for d in attempts} == {"msg_1"} and all(d.verified for d in attempts)
    assert tally.results == {"ok": 1, "retry": 2, "failed": 0}


def test_a_410_disables_only_that_url_until_restart(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    receiver.scripts["/gone"] = Script(then=410)
    gone, kept = receiver.url("/gone"), receiver.url("/kept")
    enqueue(store, [gone, kept], event("a", 1, wall()), event("b", 2, wall()))
    tally = Tally()
    sender = dispatcher(store, [gone, kept], wall, tally)
    sender.run_once()
    assert [d.body["data"]["n"] for d in receiver.taken("/kept")] == [1, 2]  # type: ignore[index]
    assert len([d for d in receiver.all() if d.path == "/gone"]) == 1  # one 410, then silence
    assert sender.disabled == {destination_key(gone)}
    enqueue(store, [gone, kept], event("a", 3, wall()))
    sender.run_once()
    assert len([d for d in receiver.all() if d.path == "/gone"]) == 1
    assert [d.body["data"]["n"] for d in receiver.taken("/kept")] == [1, 2, 3]  # type: ignore[index]
    assert store.outbox(10) == ([], 0)
    assert tally.results == {"ok": 3, "retry": 0, "failed": 3}
    # a restart (a new dispatcher) sends to it again
    receiver.scripts["/gone"] = Script()
    enqueue(store, [gone], event("a", 4, wall()))
    dispatcher(store, [gone, kept], wall, tally).run_once()
    assert len(receiver.taken("/gone")) == 1


def test_other_4xx_are_dropped_after_three_tries_but_408_and_429_wait(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    receiver.scripts["/bad"] = Script(then=400)
    receiver.scripts["/busy"] = Script([429, 408, 429, 429], then=200)
    bad, busy = receiver.url("/bad"), receiver.url("/busy")
    enqueue(store, [bad, busy], event("a", 1, wall()))
    tally = Tally()
    sender = dispatcher(store, [bad, busy], wall, tally)
    for _ in range(6):
        sender.run_once()
        wall.advance(seconds=30)
    assert [d.status for d in receiver.all() if d.path == "/bad"] == [400, 400, 400]
    assert [d.status for d in receiver.all() if d.path == "/busy"] == [429, 408, 429, 429, 200]
    assert store.outbox(10) == ([], 0)
    assert tally.results == {"ok": 1, "retry": 6, "failed": 1}


def test_order_is_kept_per_audience_and_a_waiting_audience_holds_no_other(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    url = receiver.url("/hook")
    enqueue(store, [url], *(event("a", n, wall()) for n in (1, 2, 3)), event("b", 4, wall()))
    receiver.scripts["/hook"] = Script([500])  # the first request: a's first event
    sender = dispatcher(store, [url], wall, Tally())
    sender.run_once()
    assert [d.body["data"]["n"] for d in receiver.taken()] == [4]  # type: ignore[index]
    wall.advance(seconds=1)
    sender.run_once()
    assert [d.body["data"]["n"] for d in receiver.taken()] == [4, 1, 2, 3]  # type: ignore[index]


def test_retries_stop_24_hours_after_the_event(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    receiver.scripts["/down"] = Script(then=503)
    url = receiver.url("/down")
    enqueue(store, [url], event("a", 1, wall() - timedelta(hours=23, minutes=59)))
    tally = Tally()
    sender = dispatcher(store, [url], wall, tally)
    sender.run_once()
    wall.advance(minutes=2)
    assert sender.run_once() is None
    assert len(list(receiver.all())) == 1
    assert tally.results == {"ok": 0, "retry": 1, "failed": 1}
    assert Policy().delay(20) == 600.0  # the doubling is capped


def test_a_receiver_no_longer_configured_is_given_up(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    old, new = receiver.url("/old"), receiver.url("/new")
    enqueue(store, [old], event("a", 1, wall()))
    tally = Tally()
    dispatcher(store, [new], wall, tally).run_once()
    assert list(receiver.all()) == [] and store.outbox(10) == ([], 0)
    assert tally.results["failed"] == 1


def test_the_outbox_commits_with_the_state_change_or_not_at_all(
    store: SqliteStore, empty_vault: Path, wall: FixedClock
) -> None:
    """A write that fails half-way leaves neither the state nor its events (and the other
    way round): the two are one transaction."""
    with sqlite3.connect(empty_vault) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sys_infra_drift_cycle"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    from exporter.vault.store import CycleSummary

    cycle = CycleSummary(wall(), wall(), "schedule", "full", True, True, {})
    announcer = Announcer((destination_key("http://r/"),), "http://x", lambda: "msg_1")
    record = CheckRecord(
        checks=[], previous={}, at=wall(), cycle=cycle,
        outbox=tuple(announcer.entries([event("a", 1, wall())])),
    )  # fmt: skip
    with pytest.raises(VaultError, match="disk full"):
        store.record_checks(record)
    assert store.outbox(10) == ([], 0)


def test_a_receiver_that_is_down_never_holds_back_the_others(
    store: SqliteStore, receiver: WebhookReceiver, wall: FixedClock
) -> None:
    """Once more events wait for a failing receiver than one pass reads, the other receivers'
    (and the other audiences') events are still read and sent: each queue's first rows come
    first, not the outbox's oldest."""
    receiver.scripts["/down"] = Script(then=503)
    down, up = receiver.url("/down"), receiver.url("/up")
    for n in range(6):
        enqueue(store, [down], event("a", n, wall()))
    enqueue(store, [down, up], event("a", 6, wall()), event("b", 7, wall()))
    tally = Tally()
    sender = Dispatcher(
        store,
        [Receiver(down), Receiver(up)],
        decode_secret(SECRET),
        HttpTransport(timeout=5),
        clock=wall,
        events=tally,
        policy=Policy(batch=4),
    )
    sender.run_once()
    assert sorted(d.body["data"]["n"] for d in receiver.taken() if d.body) == [6, 7]
    assert [d.path for d in receiver.taken()] == ["/up", "/up"]
    # one try of each of its queues' heads (audiences a and b), the rows behind them wait
    assert [d.status for d in receiver.all() if d.path == "/down"] == [503, 503]
    assert store.outbox(100)[1] == 8
