"""The simulator's Logpush sender against a real receiver on loopback: what it sends (the test
delivery first, then gzip NDJSON records of the ``audit_logs`` dataset, with the job's
``Authorization`` header), and what it does when the receiver answers an error: each
delivery is tried ``RETRIES`` times, then dropped and counted as failed, and the next one
goes as usual."""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support import wait_for

from exporter.demo.simulator_logpush import RETRIES, RETRY_WAIT, LogpushSender

AUTHORIZATION = "Bearer logpush-secret-0123456789"
ENTRY = {
    "id": "e-1",
    "when": "2026-03-02T09:00:00.123Z",
    "action": {"type": "update", "result": True},
    "actor": {"email": "jane@corp.example", "id": "u-1", "ip": "192.0.2.1", "type": "user"},
    "resource": {"id": "group-1", "type": "access.group"},
    "interface": "UI",
    "owner": {"id": "demo-account"},
    "newValueJson": {"include": [{"email": {"email": "friend@example.org"}}]},
}


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def lines(self) -> list[dict[str, Any]]:
        assert self.headers.get("Content-Encoding") == "gzip"
        return [json.loads(line) for line in gzip.decompress(self.body).splitlines()]


@dataclass
class Receiver:
    """What a Logpush HTTP destination received; ``answers`` are the statuses it gives, in
    order (then 200)."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.received.append(Delivery(self.path, dict(self.headers), body))
                status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/iam/drift/feed/logpush"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def sending(receiver: Receiver) -> Iterator[LogpushSender]:
    sender = LogpushSender(receiver.url, AUTHORIZATION, timeout=5).start()
    try:
        yield sender
    finally:
        sender.stop()


def test_the_test_delivery_then_gzip_ndjson_records_with_the_authorization(
    receiver: Receiver,
) -> None:
    with sending(receiver) as sender:
        sender(ENTRY)
        wait_for(lambda: sender.delivered == 1, 10, "the entry's delivery")
    test_delivery, delivery = receiver.received
    for got in (test_delivery, delivery):
        assert got.path == "/iam/drift/feed/logpush"
        assert got.headers["Authorization"] == AUTHORIZATION
        assert got.headers["Content-Type"] == "application/x-ndjson"
    assert test_delivery.lines() == [{"content": "tests are working"}]
    [record] = delivery.lines()
    assert record["ID"] == "e-1" and record["When"] == "2026-03-02T09:00:00.123Z"
    assert record["ActionType"] == "update" and record["ActionResult"] is True
    assert record["ActorEmail"] == "jane@corp.example" and record["ActorType"] == "user"
    assert record["ResourceID"] == "group-1" and record["ResourceType"] == "access.group"
    assert record["OwnerID"] == "demo-account" and record["Interface"] == "UI"
    assert record["NewValue"] == ENTRY["newValueJson"] and record["OldValue"] == {}


def test_an_error_answer_is_retried_with_the_same_body(receiver: Receiver) -> None:
    receiver.answers = [200, 500, 503]  # the test delivery, then the entry fails twice
    with sending(receiver) as sender:
        sender(ENTRY)
        wait_for(lambda: sender.delivered == 1, 10, "the entry's third try")
        assert sender.failed == 0
    tries = receiver.received[1:]
    assert len(tries) == 3
    assert tries[0].body == tries[1].body == tries[2].body  # the receiver dedups by ID
    # with backoff, as Logpush: RETRY_WAIT before the second try, twice that before the third
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= RETRY_WAIT * 0.9 and gaps[1] >= 2 * RETRY_WAIT * 0.9, gaps


def test_after_the_last_try_a_delivery_is_dropped_and_the_next_one_goes(
    receiver: Receiver,
) -> None:
    receiver.answers = [200, *[500] * RETRIES]
    with sending(receiver) as sender:
        sender(ENTRY)
        wait_for(lambda: sender.failed == 1, 10, "the entry dropped after its last try")
        assert receiver.count() == 1 + RETRIES
        sender({**ENTRY, "id": "e-2"})
        wait_for(lambda: sender.delivered == 1, 10, "the next entry's delivery")
    assert [r["ID"] for r in receiver.received[-1].lines()] == ["e-2"]


def test_a_refused_test_delivery_does_not_stop_the_entries(receiver: Receiver) -> None:
    receiver.answers = [401] * RETRIES  # the job's test delivery, refused every time
    with sending(receiver) as sender:
        sender(ENTRY)
        wait_for(lambda: sender.delivered == 1, 10, "the entry's delivery")
    assert receiver.count() == RETRIES + 1
    assert [r["ID"] for r in receiver.received[-1].lines()] == ["e-1"]
    assert "logpush-secret" not in repr(sender)
