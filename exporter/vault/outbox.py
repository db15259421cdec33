"""The webhook outbox (docs/webhooks.md): events waiting for their receivers.

Rows are written by the same write unit as the state change that caused them (a check's
audience unit, a sync's audit row), so a crash between the two loses nothing; the delivery
worker reads them in order and deletes each once its receiver took it or gave it up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from exporter.core.times import format_time, parse_time
from exporter.core.webhooks import OutboxEntry
from exporter.vault.sql import MAX_PARAMS, Reader, Statement, chunks, insert_rows, marks
from exporter.vault.store import PendingEvent

_INSERT = (
    "INSERT INTO sys_infra_drift_outbox (event_id, destination, audience, type, created_at,"
    " body) VALUES"
)


def enqueue(entries: Iterable[OutboxEntry]) -> list[Statement]:
    """The statements that persist these entries (append them to the causing write)."""
    return insert_rows(
        _INSERT,
        [
            (e.event_id, e.destination, e.audience, e.type, format_time(e.created_at), e.body)
            for e in entries
        ],
    )


def pending(conn: Reader, limit: int) -> list[PendingEvent]:
    """Each queue's (receiver and audience's) rows in the order they were written, the
    queues' first rows before any second one: so rows piling up behind a receiver that is
    down never keep the other queues out of a pass of ``limit`` rows."""
    cursor = conn.execute(
        "SELECT id, event_id, destination, audience, type, created_at, body FROM ("
        " SELECT *, row_number() OVER (PARTITION BY destination, audience ORDER BY id) AS place"
        f" FROM sys_infra_drift_outbox) ORDER BY place, id LIMIT {int(limit)}"
    )
    return [
        PendingEvent(
            int(row_id),
            OutboxEntry(
                event_id, destination, audience, kind, parse_time(created) or datetime.min, body
            ),
        )
        for row_id, event_id, destination, audience, kind, created, body in cursor.fetchall()
    ]


def size(conn: Reader) -> int:
    return int(conn.execute("SELECT count(*) FROM sys_infra_drift_outbox").fetchone()[0])


def remove(row_ids: Sequence[int]) -> list[Statement]:
    return [
        Statement(
            f"DELETE FROM sys_infra_drift_outbox WHERE id IN ({marks(len(part))})", tuple(part)
        )
        for part in chunks(list(row_ids), MAX_PARAMS)
    ]
