"""The webhook outbox on the three Vault backends: events commit with the state that caused
them (one transaction on the file, one batch on D1), or not at all, and are read back and
delivered the same way."""

from __future__ import annotations

import base64
from datetime import timedelta
from itertools import count

import pytest
from support.d1_world import World
from support.webhook_receiver import WebhookReceiver

from exporter.clock import utc_now
from exporter.core.signing import decode_secret
from exporter.core.webhooks import Announcer, destination_key
from exporter.service import assemble
from exporter.service.syncer import SyncRequest
from exporter.vault import VaultError
from exporter.webhooks.delivery import Dispatcher, Policy, Receiver
from exporter.webhooks.transport import HttpTransport

SECRET = "whsec_" + base64.b64encode(b"d1-outbox-secret-of-32-bytes-ok!").decode()
URL = "http://127.0.0.1:9/hook"  # never called: the delivery below has its own receiver


def outbox(world: World) -> list[tuple[str, str]]:
    return [
        (str(a), str(t))
        for a, t in world.sql("SELECT audience, type FROM sys_infra_drift_outbox ORDER BY id")
    ]


def test_events_commit_with_their_state_or_not_at_all(backend: World) -> None:
    ids = count(1)
    announcer = Announcer((destination_key(URL),), "http://x", lambda: f"msg_{next(ids)}")
    cloudflare = backend.cloudflare()
    services = assemble(
        backend.store(cloudflare), cloudflare, clock=backend.clock, announcer=announcer
    )
    undo = backend.fail_next_write()
    with pytest.raises(VaultError):
        services.cycle.check_all("schedule")
    undo()
    assert outbox(backend) == []
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_state") == [(0,)]

    services.cycle.check_all("schedule")
    assert outbox(backend) == [("lms-instructors", "drift.opened")]
    services.cycle.sync(SyncRequest(["lms-instructors"], actor="test"))
    assert outbox(backend) == [
        ("lms-instructors", "drift.opened"),
        ("lms-instructors", "sync.applied"),
        ("lms-instructors", "drift.resolved"),
    ]
    rows, size = services.vault.outbox(2)
    # msg_1 went with the failed write
    assert size == 3 and [r.entry.event_id for r in rows] == ["msg_2", "msg_3"]


def test_the_outbox_is_delivered_from_each_backend(backend: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        url = receiver.url("/hook")
        announcer = Announcer((destination_key(url),), "http://x", lambda: "msg_1")
        cloudflare = backend.cloudflare()
        store = backend.store(cloudflare)
        services = assemble(store, cloudflare, clock=backend.clock, announcer=announcer)
        services.cycle.check_all("schedule")
        # the world's events are dated T0, its pinned clock; signatures use the wall clock
        sender = Dispatcher(
            store,
            [Receiver(url)],
            decode_secret(SECRET),
            HttpTransport(),
            clock=utc_now,
            policy=Policy(max_age=timedelta(days=3650)),
        )
        sender.run_once()
        assert [d.verified for d in receiver.all()] == [True]
    assert outbox(backend) == []
