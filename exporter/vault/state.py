"""What a check leaves behind: statuses, the open drift episodes, first-seen times, history."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from exporter.core.model import AudienceCheck, DriftMemory, MemberSeconds, Status
from exporter.core.times import format_time, parse_time
from exporter.vault import exposure
from exporter.vault.store import CycleSummary


def load_memories(conn: sqlite3.Connection) -> dict[str, DriftMemory]:
    seen: dict[str, dict[tuple[str, str], datetime]] = {}
    notes: dict[str, dict[tuple[str, str], str]] = {}
    for audience, kind, email, first, note in conn.execute(
        "SELECT audience, kind, email, first_seen_at, note FROM sys_infra_drift_member"
    ):
        seen.setdefault(audience, {})[(kind, email)] = parse_time(first) or datetime.min
        if note is not None:
            notes.setdefault(audience, {})[(kind, email)] = note
    return {
        row[0]: _memory(row, seen.get(row[0], {}), notes.get(row[0], {}))
        for row in conn.execute(
            "SELECT audience, drift_since, consecutive_errors, error_since, missing_since,"
            " extra_since, observed_at, last_check_at, missing_seconds_closed,"
            " extra_seconds_closed FROM sys_infra_drift_state"
        )
    }


def _memory(
    row: tuple[Any, ...],
    seen: dict[tuple[str, str], datetime],
    notes: dict[tuple[str, str], str],
) -> DriftMemory:
    _, since, errors, error_since, missing_since, extra_since, observed, last_check, *closed = row
    drift_since = parse_time(since)
    return DriftMemory(
        drift_since=drift_since,
        first_seen=seen if since else {},
        consecutive_errors=errors or 0,
        error_since=parse_time(error_since),
        notes=notes if since else {},
        missing_since=parse_time(missing_since) or _onset(observed, drift_since, seen, "missing"),
        extra_since=parse_time(extra_since) or _onset(observed, drift_since, seen, "extra"),
        observed_at=parse_time(observed) or parse_time(last_check),
        closed=MemberSeconds(closed[0] or 0.0, closed[1] or 0.0),
    )


def _onset(
    observed: str | None,
    drift_since: datetime | None,
    seen: dict[tuple[str, str], datetime],
    kind: str,
) -> datetime | None:
    """A row that an older version wrote (no ``observed_at``) has no side onsets: the
    episode's start stands in for each side it shows (never a later, lower level)."""
    if observed is not None or drift_since is None:
        return None
    if seen and not any(k == kind for k, _ in seen):
        return None
    return drift_since


def record_checks(
    conn: sqlite3.Connection,
    checks: Iterable[AudienceCheck],
    previous: dict[str, DriftMemory],
    now: datetime,
    closed_by_sync: str | None = None,
) -> None:
    """Persist checks (inside the caller's transaction).

    ``closed_by_sync`` names the actor when these checks follow our own sync, so an episode
    they close is recorded as closed by that sync rather than fixed outside.
    """
    for check in checks:
        before = previous.get(check.audience.audience, DriftMemory())
        _update_status(conn, check, now)
        episode_id = _track_episode(conn, check, before, closed_by_sync)
        _write_state(conn, check, episode_id)
        _write_members(conn, check.audience.audience, before, check.memory)
        if check.revoked:
            exposure.record_revocations(conn, check.revoked)


def _update_status(conn: sqlite3.Connection, check: AudienceCheck, now: datetime) -> None:
    name = check.audience.audience
    row = conn.execute(
        "SELECT sync_status, error_message FROM sys_infra_state WHERE audience = ?", (name,)
    ).fetchone()
    if row is None:
        return
    status, message = str(check.status), check.error_message
    if (row[0], row[1]) == (status, message):
        return
    conn.execute(
        "UPDATE sys_infra_state SET sync_status = ?, error_message = ?, updated_at = ?"
        " WHERE audience = ?",
        (status, message, format_time(now), name),
    )
    if check.status is Status.ERROR and message:
        conn.execute(
            "INSERT INTO sys_infra_drift_error (at, audience, message) VALUES (?, ?, ?)",
            (format_time(now), name, message),
        )


def _track_episode(
    conn: sqlite3.Connection, check: AudienceCheck, before: DriftMemory, closed_by: str | None
) -> int | None:
    name = check.audience.audience
    row = conn.execute(
        "SELECT episode_id FROM sys_infra_drift_state WHERE audience = ?", (name,)
    ).fetchone()
    episode_id = row[0] if row else None
    if check.status is Status.ERROR:
        return episode_id
    if check.status is Status.DRIFT:
        if episode_id is None:
            cursor = conn.execute(
                "INSERT INTO sys_infra_drift_episode (audience, namespace, opened_at)"
                " VALUES (?, ?, ?)",
                (name, check.audience.namespace, format_time(check.memory.drift_since)),
            )
            episode_id = cursor.lastrowid
        conn.execute(
            "UPDATE sys_infra_drift_episode SET peak_missing = max(peak_missing, ?),"
            " peak_extra = max(peak_extra, ?) WHERE id = ?",
            (len(check.missing), len(check.extra), episode_id),
        )
        return episode_id
    if episode_id is not None:
        close_episode(
            conn, episode_id, check.checked_at, "sync" if closed_by else "external", closed_by
        )
    return None


def close_episode(
    conn: sqlite3.Connection, episode_id: int, at: datetime, reason: str, actor: str | None
) -> None:
    conn.execute(
        "UPDATE sys_infra_drift_episode SET closed_at = ?, close_reason = ?, closed_by = ?"
        " WHERE id = ? AND closed_at IS NULL",
        (format_time(at), reason, actor, episode_id),
    )


def _write_state(conn: sqlite3.Connection, check: AudienceCheck, episode_id: int | None) -> None:
    memory = check.memory
    conn.execute(
        "INSERT INTO sys_infra_drift_state (audience, drift_since, episode_id, last_check_at,"
        " expected_count, actual_count, missing_count, extra_count, error_since,"
        " consecutive_errors, missing_since, extra_since, observed_at, missing_seconds_closed,"
        " extra_seconds_closed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (audience) DO UPDATE SET drift_since = excluded.drift_since,"
        " episode_id = excluded.episode_id, last_check_at = excluded.last_check_at,"
        " expected_count = excluded.expected_count, actual_count = excluded.actual_count,"
        " missing_count = excluded.missing_count, extra_count = excluded.extra_count,"
        " error_since = excluded.error_since, consecutive_errors = excluded.consecutive_errors,"
        " missing_since = excluded.missing_since, extra_since = excluded.extra_since,"
        " observed_at = excluded.observed_at,"
        " missing_seconds_closed = excluded.missing_seconds_closed,"
        " extra_seconds_closed = excluded.extra_seconds_closed",
        (
            check.audience.audience,
            format_time(memory.drift_since),
            episode_id,
            format_time(check.checked_at),
            check.expected_count,
            check.actual_count,
            len(check.missing),
            len(check.extra),
            format_time(memory.error_since) if check.status is Status.ERROR else None,
            memory.consecutive_errors if check.status is Status.ERROR else 0,
            format_time(memory.missing_since),
            format_time(memory.extra_since),
            format_time(memory.observed_at),
            memory.closed.missing,
            memory.closed.extra,
        ),
    )


def _write_members(
    conn: sqlite3.Connection, audience: str, before: DriftMemory, after: DriftMemory
) -> None:
    gone = before.first_seen.keys() - after.first_seen.keys()
    new = after.first_seen.keys() - before.first_seen.keys()
    conn.executemany(
        "DELETE FROM sys_infra_drift_member WHERE audience = ? AND kind = ? AND email = ?",
        [(audience, kind, email) for kind, email in gone],
    )
    notes = after.notes
    conn.executemany(
        "INSERT OR REPLACE INTO sys_infra_drift_member (audience, kind, email, first_seen_at,"
        " note) VALUES (?, ?, ?, ?, ?)",
        [
            (audience, k, e, format_time(after.first_seen[(k, e)]), notes.get((k, e)))
            for k, e in new
        ],
    )
    if not (notes or before.notes):
        return  # the common case: no member has a note, before or after
    kept = after.first_seen.keys() & before.first_seen.keys()
    conn.executemany(
        "UPDATE sys_infra_drift_member SET note = ? WHERE audience = ? AND kind = ? AND email = ?",
        [
            (notes.get(key), audience, *key)
            for key in kept
            if notes.get(key) != before.notes.get(key)
        ],
    )


def forget_removed(conn: sqlite3.Connection, present: Iterable[str], now: datetime) -> list[str]:
    """Audiences gone from sys_infra_state: close their episodes and drop their state."""
    keep = set(present)
    rows = conn.execute("SELECT audience, episode_id FROM sys_infra_drift_state").fetchall()
    removed = [(name, episode) for name, episode in rows if name not in keep]
    for name, episode in removed:
        if episode is not None:
            close_episode(conn, episode, now, "removed", None)
        conn.execute("DELETE FROM sys_infra_drift_state WHERE audience = ?", (name,))
        conn.execute("DELETE FROM sys_infra_drift_member WHERE audience = ?", (name,))
    return [name for name, _ in removed]


def record_cycle(conn: sqlite3.Connection, cycle: CycleSummary) -> None:
    counts = cycle.counts
    conn.execute(
        "INSERT INTO sys_infra_drift_cycle (started_at, finished_at, trigger, scope, vault_ok,"
        " cloudflare_ok, total, pending, synced, drift, error, duration_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            format_time(cycle.started_at),
            format_time(cycle.finished_at),
            cycle.trigger,
            cycle.scope,
            int(cycle.vault_ok),
            int(cycle.cloudflare_ok),
            sum(counts.values()),
            counts.get("pending", 0),
            counts.get("synced", 0),
            counts.get("drift", 0),
            counts.get("error", 0),
            (cycle.finished_at - cycle.started_at).total_seconds(),
        ),
    )


def record_sync_time(conn: sqlite3.Connection, audience: str, at: datetime) -> None:
    conn.execute(
        "UPDATE sys_infra_state SET last_sync_at = ?, updated_at = ? WHERE audience = ?",
        (format_time(at), format_time(at), audience),
    )


def set_group_id(conn: sqlite3.Connection, audience: str, group_id: str, at: datetime) -> None:
    conn.execute(
        "UPDATE sys_infra_state SET provider_resource_id = ?, provider_resource_type ="
        " coalesce(provider_resource_type, 'access_group'), updated_at = ? WHERE audience = ?",
        (group_id, format_time(at), audience),
    )


def prune_history(conn: sqlite3.Connection, before: datetime) -> None:
    """Bounded retention: drop closed history older than ``before``."""
    cutoff = format_time(before)
    conn.execute("DELETE FROM sys_infra_drift_cycle WHERE started_at < ?", (cutoff,))
    conn.execute("DELETE FROM sys_infra_drift_error WHERE at < ?", (cutoff,))
    conn.execute(
        "DELETE FROM sys_infra_drift_episode WHERE closed_at IS NOT NULL AND closed_at < ?",
        (cutoff,),
    )
    conn.execute(
        "DELETE FROM sys_infra_drift_audit WHERE started_at < ? AND result != 'in_progress'",
        (cutoff,),
    )
    conn.execute("DELETE FROM sys_infra_drift_mail WHERE at < ?", (cutoff,))
    exposure.prune_revocations(conn, before)
