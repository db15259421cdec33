"""What exposure persists: each revocation as a row, and the revocation histogram's totals."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from exporter.core.exposure import LatencyTotals, bucket_of
from exporter.core.model import Revocation
from exporter.core.times import format_time
from exporter.vault.sql import Reader, Statement


def record_revocations(revoked: Iterable[Revocation]) -> list[Statement]:
    """Each revocation once: its row and its histogram bucket, with the member's deletion."""
    statements = []
    for r in revoked:
        statements.append(
            Statement(
                "INSERT INTO sys_infra_drift_revocation (audience, namespace, provider, email,"
                " first_seen_at, revoked_at, duration_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    r.audience,
                    r.namespace,
                    r.provider,
                    r.email,
                    format_time(r.first_seen_at),
                    format_time(r.revoked_at),
                    r.seconds,
                ),
            )
        )
        statements.append(
            Statement(
                "INSERT INTO sys_infra_drift_revocation_total (namespace, provider, bucket,"
                " count, seconds) VALUES (?, ?, ?, 1, ?) ON CONFLICT (namespace, provider,"
                " bucket) DO UPDATE SET count = count + 1, seconds = seconds + excluded.seconds",
                (r.namespace, r.provider, bucket_of(r.seconds), r.seconds),
            )
        )
    return statements


def revocation_totals(conn: Reader) -> dict[tuple[str, str], LatencyTotals]:
    found: dict[tuple[str, str], tuple[dict[str, int], list[float]]] = {}
    for namespace, provider, bucket, count, seconds in conn.execute(
        "SELECT namespace, provider, bucket, count, seconds FROM sys_infra_drift_revocation_total"
    ):
        counts, total = found.setdefault((namespace, provider), ({}, [0.0]))
        counts[bucket] = int(count)
        total[0] += float(seconds)
    return {key: LatencyTotals(counts, total[0]) for key, (counts, total) in sorted(found.items())}


def prune_revocations(before: datetime) -> Statement:
    """Revocation rows go with the history; the histogram's totals stay."""
    return Statement(
        "DELETE FROM sys_infra_drift_revocation WHERE revoked_at < ?", (format_time(before),)
    )
