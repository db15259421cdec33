"""Webhook delivery soak: events against a receiver on loopback that fails 20 % of the time.

    python -m bench.webhook_soak            # 1,000 events (docs/benchmarks.md)
    python -m bench.webhook_soak --small    # 100 events (the test suite's smoke check)

The events are written to the outbox of a real Vault file in bursts, as checks would, and the
real delivery worker (``serve``'s thread, its HTTP transport, its 1 s doubling backoff) sends
them to a receiver that verifies each with the ``standardwebhooks`` library. A fifth of the
requests fail with a 500; of those, ``--lost-answers`` (half by default) fail *after* the
receiver processed the event, as when its answer is lost: the sender must retry those, and
they are the only duplicates allowed. Counted at the receiver:

- delivered: events processed at least once; lost: events never processed (goal 0);
- duplicates: extra processings of one event id; each must follow a failure after processing
  (a retry), never a 2xx (goal: duplicates == failures after processing);
- every request verified and every id's processings in order per audience.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from collections import Counter
from itertools import count
from pathlib import Path
from typing import Any

from support.webhook_receiver import Script, WebhookReceiver

from exporter.clock import utc_now
from exporter.core.signing import decode_secret
from exporter.core.webhooks import Announcer, Event, destination_key
from exporter.demo.sample import create_schema
from exporter.vault import SqliteStore
from exporter.vault.store import CheckRecord
from exporter.webhooks.delivery import Dispatcher, Receiver
from exporter.webhooks.transport import HttpTransport
from exporter.webhooks.worker import DeliveryWorker

SECRET = "whsec_" + base64.b64encode(b"soak-secret-of-thirty-two-bytes!").decode()


def soak(
    events: int, audiences: int, bursts: int, fail_ratio: float, lost_answers: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver(SECRET, seed=25) as receiver:
        path = Path(tmp) / "vault.db"
        create_schema(path)
        store = SqliteStore(path).open()
        url = receiver.url("/soak")
        receiver.scripts["/soak"] = Script(fail_ratio=fail_ratio, fail_after_ratio=lost_answers)
        ids = count(1)
        announcer = Announcer((destination_key(url),), "http://x", lambda: f"msg_{next(ids)}")
        dispatcher = Dispatcher(
            store, [Receiver(url)], decode_secret(SECRET), HttpTransport(), clock=utc_now
        )
        worker = DeliveryWorker(dispatcher, idle=1.0).start()
        started = time.monotonic()
        sent_order: dict[str, list[int]] = {}
        per_burst = events // bursts
        for burst in range(bursts):
            batch = []
            for n in range(burst * per_burst, (burst + 1) * per_burst):
                audience = f"audience-{n % audiences}"
                sent_order.setdefault(audience, []).append(n)
                batch.append(
                    Event("drift.opened", audience, utc_now(), {"audience": audience, "n": n})
                )
            store.record_checks(
                CheckRecord(
                    checks=[], previous={}, at=utc_now(), outbox=tuple(announcer.entries(batch))
                )
            )
            worker.wake()
            time.sleep(0.2)
        while store.outbox(1)[1] and time.monotonic() - started < 600:
            time.sleep(0.1)
        seconds = time.monotonic() - started
        worker.stop()
        return _tally(list(receiver.all()), events, sent_order, seconds)


def _tally(
    deliveries: list[Any], events: int, sent_order: dict[str, list[int]], seconds: float
) -> dict[str, Any]:
    kept = [d for d in deliveries if d.kept]
    processed = Counter(d.webhook_id for d in kept)
    failed_after = sum(1 for d in kept if not 200 <= d.status < 300)
    order_kept = all(
        [d.body["data"]["n"] for d in _first_processing(kept) if d.body["data"]["audience"] == a]
        == numbers
        for a, numbers in sent_order.items()
    )
    return {
        "events": events,
        "requests": len(deliveries),
        "failures_500": sum(1 for d in deliveries if d.status == 500),
        "failures_after_processing": failed_after,
        "delivered": len(processed),
        "duplicates": sum(n - 1 for n in processed.values()),
        "lost": events - len(processed),
        "all_verified": all(d.verified for d in deliveries),
        "order_kept_per_audience": order_kept,
        "seconds": round(seconds, 1),
    }


def _first_processing(kept: list[Any]) -> list[Any]:
    seen: set[str] = set()
    first = []
    for delivery in kept:
        if delivery.webhook_id not in seen:
            seen.add(delivery.webhook_id)
            first.append(delivery)
    return first


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--audiences", type=int, default=50)
    parser.add_argument("--fail-ratio", type=float, default=0.2)
    parser.add_argument("--lost-answers", type=float, default=0.5)
    args = parser.parse_args(argv)
    events = 100 if args.small else args.events
    result = soak(events, min(args.audiences, events), 10, args.fail_ratio, args.lost_answers)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
