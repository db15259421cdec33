"""The simulated Cloudflare's Logpush: each new audit-log entry delivered to an HTTP
destination, as a Logpush job of the account ``audit_logs`` dataset would (README, "Change
feed"). A delivery is a POST of gzip-compressed newline-delimited JSON, one record per line
with the dataset's field names (Cloudflare's Logpush documentation, "Audit Logs" dataset);
the destination's ``header_Authorization`` parameter becomes the ``Authorization`` header.
``first_delivery`` is the test delivery Logpush sends when a job is created.

Deliveries leave from one thread, oldest first, a batch at a time; a failed one is retried
after a wait that doubles from ``RETRY_WAIT`` (Logpush retries too, with backoff; a
destination still starting, as the demo's exporter is, gets its test delivery on a later
try), so the receiver must take an entry twice without acting twice. What
it does not model: batching by size or time, ``timestamp_format`` other than ``rfc3339``,
field selection, filters, ownership challenges for other destinations.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("vault_drift.demo.logpush")

RETRIES = 3
RETRY_WAIT = 0.5  # seconds before the second try; doubled before each next one


def logpush_record(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit-log (v1) entry as a record of the ``audit_logs`` dataset."""
    action, actor = entry.get("action") or {}, entry.get("actor") or {}
    resource, owner = entry.get("resource") or {}, entry.get("owner") or {}
    return {
        "ActionResult": action.get("result"),
        "ActionType": action.get("type"),
        "ActorEmail": actor.get("email"),
        "ActorID": actor.get("id"),
        "ActorIP": actor.get("ip"),
        "ActorType": actor.get("type"),
        "ID": entry.get("id"),
        "Interface": entry.get("interface"),
        "Metadata": entry.get("metadata") or {},
        "NewValue": entry.get("newValueJson") or {},
        "OldValue": entry.get("oldValueJson") or {},
        "OwnerID": owner.get("id"),
        "ResourceID": resource.get("id"),
        "ResourceType": resource.get("type"),
        "When": entry.get("when"),
    }


def delivery_body(records: list[dict[str, Any]]) -> bytes:
    lines = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
    return gzip.compress(lines)


def first_delivery() -> bytes:
    """What a new job sends first, to see that the destination answers."""
    return gzip.compress(b'{"content":"tests are working"}\n')


class LogpushSender:
    """Delivers entries to ``url`` with ``Authorization: <authorization>`` from a thread."""

    def __init__(
        self, url: str, authorization: str, *, timeout: float = 10.0, retry_wait: float = RETRY_WAIT
    ) -> None:
        self.url, self._authorization, self._timeout = url, authorization, timeout
        self._retry_wait = retry_wait
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sim-logpush", daemon=True)
        self.delivered = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"LogpushSender({self.url!r}, authorization=<redacted>)"

    def start(self) -> LogpushSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def __call__(self, entry: dict[str, Any]) -> None:
        """The audit log's hook: one more entry to deliver."""
        self._queue.put(entry)

    def _run(self) -> None:
        self._tries(first_delivery())  # the job's test delivery first, as Logpush sends it
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            batch = [entry]
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            body = delivery_body([logpush_record(e) for e in batch])
            if self._tries(body):
                self.delivered += len(batch)
            else:
                self.failed += len(batch)

    def _tries(self, body: bytes) -> bool:
        """Up to ``RETRIES`` posts of ``body``, waiting longer before each next one."""
        wait = self._retry_wait
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(wait)
                wait *= 2
            if self.post(body):
                return True
        return False

    def post(self, body: bytes) -> bool:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                return 200 <= answer.status < 300
        except (urllib.error.URLError, OSError) as exc:
            log.info("logpush delivery failed: %s", exc)
            return False
