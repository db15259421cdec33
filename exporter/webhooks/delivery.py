"""Delivering the outbox: one pass at a time, by the worker thread (``worker.py``).

At least once, in order per audience and receiver: a queue is the outbox rows of one
(receiver, audience), oldest first, and only its head is ever sent; a head that must wait
holds the rows behind it, other queues go on. An answer in 2xx takes the row off the outbox.
Anything else is retried after 1 s, doubling up to ``max_delay``, for ``max_age`` (24 h)
from the event, except:
- 410 Gone: the receiver is disabled until the exporter restarts; its rows are dropped;
- another 4xx (but 408 and 429, which say "later"): dropped after ``client_error_tries``.
The retry state is kept in memory: a restart sends every waiting row again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from exporter.core.signing import signed_headers
from exporter.core.webhooks import destination_key
from exporter.vault.store import PendingEvent, VaultError, VaultStore
from exporter.webhooks.transport import Transport, receiver_label

log = logging.getLogger("vault_drift.webhooks")

OK, RETRY, FAILED = "ok", "retry", "failed"
TRANSIENT_4XX = (408, 429)


class DeliveryEvents(Protocol):
    """What a pass reports to the exporter's metrics."""

    def delivered(self, result: str) -> None: ...  # ok | retry | failed
    def outbox_size(self, size: int) -> None: ...


class NoDeliveryEvents:
    def delivered(self, result: str) -> None:
        pass

    def outbox_size(self, size: int) -> None:
        pass


@dataclass(frozen=True)
class Receiver:
    url: str

    @property
    def key(self) -> str:
        return destination_key(self.url)

    @property
    def label(self) -> str:
        return receiver_label(self.url)


@dataclass(frozen=True)
class Policy:
    first_delay: float = 1.0
    max_delay: float = 600.0
    max_age: timedelta = timedelta(hours=24)
    client_error_tries: int = 3
    batch: int = 500  # rows read per pass

    def delay(self, attempts: int) -> float:
        return float(min(self.first_delay * 2 ** (attempts - 1), self.max_delay))


@dataclass
class _Attempts:
    tries: int = 0
    client_errors: int = 0
    next_at: datetime | None = None


class Dispatcher:
    """Sends what the outbox holds to the configured receivers, signed with ``key``."""

    def __init__(
        self,
        store: VaultStore,
        receivers: Sequence[Receiver],
        key: bytes,
        transport: Transport,
        *,
        clock: Callable[[], datetime],
        events: DeliveryEvents | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.store, self.key, self.transport, self.clock = store, key, transport, clock
        self.receivers: Mapping[str, Receiver] = {r.key: r for r in receivers}
        self.events: DeliveryEvents = events or NoDeliveryEvents()
        self.policy = policy or Policy()
        self.disabled: set[str] = set()  # receivers that answered 410, until restart
        self._attempts: dict[int, _Attempts] = {}
        self._taken = 0  # rows taken off the outbox in the current pass

    def run_once(self) -> float | None:
        """One pass over the outbox: seconds until a waiting row is due again (0: more rows
        than one pass reads), None when the outbox is empty."""
        rows, size = self.store.outbox(self.policy.batch)
        self.events.outbox_size(size)
        queues: dict[tuple[str, str], list[PendingEvent]] = {}
        for row in rows:
            queues.setdefault((row.entry.destination, row.entry.audience), []).append(row)
        self._taken = 0
        waits = [w for queue in queues.values() if (w := self._drain(queue)) is not None]
        read = {row.row_id for row in rows}
        self._attempts = {k: v for k, v in self._attempts.items() if k in read}
        if self._taken:  # the next read shows what is left (and the rows past this batch)
            self.events.outbox_size(size - self._taken)
            if size > len(rows):
                waits.append(0.0)
        return min(waits) if waits else None

    def _drain(self, queue: list[PendingEvent]) -> float | None:
        """Send one queue's rows in order until one must wait; the seconds it waits."""
        for row in queue:
            now = self.clock()
            state = self._attempts.get(row.row_id, _Attempts())
            if state.next_at is not None and state.next_at > now:
                return (state.next_at - now).total_seconds()
            result = self._deliver(row, state, now)
            if result == RETRY:
                self._attempts[row.row_id] = state
                return self.policy.delay(state.tries)
            self._attempts.pop(row.row_id, None)
            if not self._remove(row):
                return self.policy.first_delay
            self._taken += 1
            self.events.delivered(result)
        return None

    def _deliver(self, row: PendingEvent, state: _Attempts, now: datetime) -> str:
        """One attempt (or none, when the row is past saving): ok | retry | failed."""
        entry = row.entry
        receiver = self.receivers.get(entry.destination)
        if receiver is None or entry.destination in self.disabled:
            return FAILED  # a receiver no longer configured, or gone (410) until restart
        if now - entry.created_at > self.policy.max_age:
            log.warning(
                "webhook dropped after retrying for %s", self.policy.max_age, extra=_log(row)
            )
            return FAILED
        status = self._post(receiver, row, now)
        state.tries += 1
        if status is not None and 200 <= status < 300:
            return OK
        if status == 410:
            self.disabled.add(receiver.key)
            log.warning(
                "webhook receiver %s answered 410 Gone: disabled until restart",
                receiver.label,
                extra=_log(row),
            )
            return FAILED
        if status is not None and 400 <= status < 500 and status not in TRANSIENT_4XX:
            state.client_errors += 1
            if state.client_errors >= self.policy.client_error_tries:
                log.warning(
                    "webhook dropped: %s answered %d %d times",
                    receiver.label,
                    status,
                    state.client_errors,
                    extra=_log(row),
                )
                return FAILED
        state.next_at = now + timedelta(seconds=self.policy.delay(state.tries))
        self.events.delivered(RETRY)
        return RETRY

    def _post(self, receiver: Receiver, row: PendingEvent, now: datetime) -> int | None:
        body = row.entry.body.encode()
        headers = signed_headers(self.key, row.entry.event_id, int(now.timestamp()), body)
        try:
            return self.transport.post(receiver.url, body, headers)
        except OSError as exc:
            log.info(
                "webhook to %s failed: %s", receiver.label, type(exc).__name__, extra=_log(row)
            )
            return None

    def _remove(self, row: PendingEvent) -> bool:
        try:
            self.store.remove_outbox([row.row_id])
        except VaultError as exc:  # sent again later: at least once, never lost
            log.warning("could not take a delivered webhook off the outbox: %s", exc)
            return False
        return True


def _log(row: PendingEvent) -> dict[str, str]:
    entry = row.entry
    return {"webhook_id": entry.event_id, "type": entry.type, "audience": entry.audience}
