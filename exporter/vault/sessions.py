"""What session revocation persists: each revocation (queued before it is sent), its totals,
and how far the removals checks recorded were read (README, "Effective removal")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from exporter.core.exposure import LatencyTotals
from exporter.core.model import Revocation
from exporter.core.sessions import (
    CANCELLED,
    FAILED,
    OK,
    PENDING,
    REVOKED,
    Leaver,
    SessionRevocation,
    SessionTotals,
    access_end_bucket,
)
from exporter.core.times import format_time, parse_time
from exporter.vault.sql import Reader, Statement

CURSOR = "removals"
_COLUMNS = (
    "id, audience, namespace, provider, email, reason, removed_at, first_seen_at, state,"
    " attempts, revoked_at, last_error"
)


def removed_since_cursor(conn: Reader) -> tuple[list[Revocation], int]:
    """The removals checks recorded since the cursor, and the cursor to move to. Without a
    cursor yet (a first start), none: the cursor starts at the newest row."""
    row = conn.execute(
        "SELECT last_id FROM sys_infra_drift_session_cursor WHERE name = ?", (CURSOR,)
    ).fetchone()
    if row is None:
        newest = conn.execute("SELECT max(id) FROM sys_infra_drift_revocation").fetchone()
        return [], int(newest[0] or 0)
    found, last = [], int(row[0])
    for rid, audience, namespace, provider, email, first, gone in conn.execute(
        "SELECT id, audience, namespace, provider, email, first_seen_at, revoked_at"
        " FROM sys_infra_drift_revocation WHERE id > ? ORDER BY id",
        (last,),
    ):
        first_at, gone_at = parse_time(first), parse_time(gone)
        if first_at is not None and gone_at is not None:
            found.append(Revocation(audience, namespace, provider, email, first_at, gone_at))
        last = max(last, int(rid))
    return found, last


def queue(leavers: Iterable[Leaver], cursor: int) -> list[Statement]:
    """Each leaver as a pending revocation (a no-op when one is already pending), with the
    cursor: one atomic write, so a crash neither loses nor repeats a removal."""
    statements = [
        Statement(
            "INSERT INTO sys_infra_drift_session_revocation (audience, namespace, provider,"
            " email, reason, removed_at, first_seen_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                leaver.audience,
                leaver.namespace,
                leaver.provider,
                leaver.email,
                leaver.reason,
                format_time(leaver.removed_at),
                format_time(leaver.first_seen_at),
                PENDING,
            ),
        )
        for leaver in leavers
    ]
    statements.append(
        Statement(
            "INSERT INTO sys_infra_drift_session_cursor (name, last_id) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
            (CURSOR, cursor),
        )
    )
    return statements


def pending(conn: Reader) -> list[SessionRevocation]:
    return [
        _revocation(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM sys_infra_drift_session_revocation WHERE state = ?"
            " ORDER BY removed_at, id",
            (PENDING,),
        )
    ]


def recent(conn: Reader, audience: str | None, limit: int) -> list[SessionRevocation]:
    where, params = ("WHERE audience = ?", (audience,)) if audience is not None else ("", ())
    return [
        _revocation(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM sys_infra_drift_session_revocation {where}"
            " ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    ]


def finish(
    revocation: SessionRevocation, result: str, error: str | None, at: datetime
) -> list[Statement]:
    """One attempt's outcome (``ok`` | ``failed`` | ``cancelled``) with its totals."""
    when = format_time(at)
    if result == CANCELLED:
        return [
            Statement(
                "UPDATE sys_infra_drift_session_revocation SET state = ?, last_error = ?"
                " WHERE id = ? AND state = ?",
                (CANCELLED, error, revocation.id, PENDING),
            )
        ]
    ok = result == OK
    statements = [
        Statement(
            "UPDATE sys_infra_drift_session_revocation SET attempts = attempts + 1,"
            " last_attempt_at = ?, state = ?, revoked_at = ?, last_error = ?"
            " WHERE id = ? AND state = ?",
            (
                when,
                REVOKED if ok else PENDING,
                when if ok else None,
                error,
                revocation.id,
                PENDING,
            ),
        ),
        _add_total(revocation, "result", OK if ok else FAILED, 0.0),
    ]
    if ok:
        bucket = access_end_bucket(replace(revocation, revoked_at=at))
        if bucket is not None:
            statements.append(_add_total(revocation, "access_end", *bucket))
    return statements


def _add_total(revocation: SessionRevocation, kind: str, bucket: str, seconds: float) -> Statement:
    return Statement(
        "INSERT INTO sys_infra_drift_session_total (namespace, provider, kind, bucket, count,"
        " seconds) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (namespace, provider, kind, bucket)"
        " DO UPDATE SET count = count + 1, seconds = seconds + excluded.seconds",
        (revocation.namespace, revocation.provider, kind, bucket, seconds),
    )


def totals(conn: Reader) -> SessionTotals:
    counts: dict[tuple[str, str, str], int] = {}
    buckets: dict[tuple[str, str], tuple[dict[str, int], list[float]]] = {}
    for namespace, provider, kind, bucket, count, seconds in conn.execute(
        "SELECT namespace, provider, kind, bucket, count, seconds"
        " FROM sys_infra_drift_session_total"
    ):
        if kind == "result":
            counts[(namespace, provider, bucket)] = int(count)
        elif kind == "access_end":
            found, total = buckets.setdefault((namespace, provider), ({}, [0.0]))
            found[bucket] = int(count)
            total[0] += float(seconds)
    row = conn.execute(
        "SELECT count(*) FROM sys_infra_drift_session_revocation WHERE state = ?", (PENDING,)
    ).fetchone()
    access_end = {key: LatencyTotals(found, total[0]) for key, (found, total) in buckets.items()}
    return SessionTotals(counts, access_end, int(row[0] or 0))


def _revocation(row: Any) -> SessionRevocation:
    rid, audience, namespace, provider, email, reason, removed, first, state = row[:9]
    attempts, revoked, error = row[9:]
    return SessionRevocation(
        int(rid),
        audience,
        namespace,
        provider,
        email,
        reason,
        parse_time(removed) or datetime.min,
        parse_time(first),
        state,
        int(attempts or 0),
        parse_time(revoked),
        error,
    )
