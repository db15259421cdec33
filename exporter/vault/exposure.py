"""What exposure persists: each revocation as a row, and the revocation histogram's totals."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from exporter.core.exposure import LatencyTotals, bucket_of
from exporter.core.model import Revocation
from exporter.core.times import format_time


def record_revocations(conn: sqlite3.Connection, revoked: Iterable[Revocation]) -> None:
    """Each revocation once: its row and its histogram bucket, with the member's deletion."""
    rows = [
        (r.audience, r.namespace, r.provider, r.email, r.first_seen_at, r.revoked_at, r.seconds)
        for r in revoked
    ]
    conn.executemany(
        "INSERT INTO sys_infra_drift_revocation (audience, namespace, provider, email,"
        " first_seen_at, revoked_at, duration_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*row[:4], format_time(row[4]), format_time(row[5]), row[6]) for row in rows],
    )
    conn.executemany(
        "INSERT INTO sys_infra_drift_revocation_total (namespace, provider, bucket, count,"
        " seconds) VALUES (?, ?, ?, 1, ?) ON CONFLICT (namespace, provider, bucket)"
        " DO UPDATE SET count = count + 1, seconds = seconds + excluded.seconds",
        [(row[1], row[2], bucket_of(row[6]), row[6]) for row in rows],
    )


def revocation_totals(conn: sqlite3.Connection) -> dict[tuple[str, str], LatencyTotals]:
    found: dict[tuple[str, str], tuple[dict[str, int], list[float]]] = {}
    for namespace, provider, bucket, count, seconds in conn.execute(
        "SELECT namespace, provider, bucket, count, seconds FROM sys_infra_drift_revocation_total"
    ):
        counts, total = found.setdefault((namespace, provider), ({}, [0.0]))
        counts[bucket] = int(count)
        total[0] += float(seconds)
    return {key: LatencyTotals(counts, total[0]) for key, (counts, total) in sorted(found.items())}


def prune_revocations(conn: sqlite3.Connection, before: datetime) -> None:
    """Revocation rows go with the history; the histogram's totals stay."""
    cutoff = format_time(before)
    conn.execute("DELETE FROM sys_infra_drift_revocation WHERE revoked_at < ?", (cutoff,))
