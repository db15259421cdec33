"""What a check leaves behind: statuses, the open drift episodes, first-seen times, history.

The writes are statements (see ``sql.py``): each finds the audience's open episode with a
subquery on ``sys_infra_drift_state``, never with a value read beforehand, so a whole cycle
can go to the database as one atomic unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from exporter.core.attribution import attribution_from_text, attribution_text
from exporter.core.model import (
    Attribution,
    AudienceCheck,
    DriftMemory,
    MemberKey,
    MemberSeconds,
    Side,
    Status,
)
from exporter.core.times import format_time, parse_time
from exporter.vault import exposure
from exporter.vault.sql import MAX_PARAMS, Reader, Statement, chunks, insert_rows, marks
from exporter.vault.store import CycleSummary

_OPEN_EPISODE = "(SELECT episode_id FROM sys_infra_drift_state WHERE audience = ?)"


MEMORY_MEMBERS = (
    "SELECT audience, kind, email, first_seen_at, note, attribution FROM sys_infra_drift_member"
)
MEMORY_STATES = (
    "SELECT audience, drift_since, consecutive_errors, error_since, missing_since,"
    " extra_since, observed_at, last_check_at, missing_seconds_closed,"
    " extra_seconds_closed FROM sys_infra_drift_state"
)


def load_memories(conn: Reader) -> dict[str, DriftMemory]:
    seen: dict[str, dict[MemberKey, datetime]] = {}
    notes: dict[str, dict[MemberKey, str]] = {}
    known: dict[str, dict[MemberKey, Attribution]] = {}
    for audience, side, email, first, note, attribution in conn.execute(MEMORY_MEMBERS):
        kind = Side(side)
        seen.setdefault(audience, {})[(kind, email)] = parse_time(first) or datetime.min
        if note is not None:
            notes.setdefault(audience, {})[(kind, email)] = note
        if (read := attribution_from_text(attribution)) is not None:
            known.setdefault(audience, {})[(kind, email)] = read
    return {
        row[0]: _memory(row, seen.get(row[0], {}), notes.get(row[0], {}), known.get(row[0], {}))
        for row in conn.execute(MEMORY_STATES)
    }


def _memory(
    row: tuple[Any, ...],
    seen: dict[MemberKey, datetime],
    notes: dict[MemberKey, str],
    attributions: dict[MemberKey, Attribution],
) -> DriftMemory:
    _, since, errors, error_since, missing_since, extra_since, observed, last_check, *closed = row
    drift_since = parse_time(since)
    return DriftMemory(
        drift_since=drift_since,
        first_seen=seen if since else {},
        consecutive_errors=int(errors or 0),
        error_since=parse_time(error_since),
        notes=notes if since else {},
        missing_since=parse_time(missing_since)
        or _onset(observed, drift_since, seen, Side.MISSING),
        extra_since=parse_time(extra_since) or _onset(observed, drift_since, seen, Side.EXTRA),
        observed_at=parse_time(observed) or parse_time(last_check),
        closed=MemberSeconds(closed[0] or 0.0, closed[1] or 0.0),
        attributions=attributions if since else {},
    )


def _onset(
    observed: str | None,
    drift_since: datetime | None,
    seen: dict[MemberKey, datetime],
    kind: Side,
) -> datetime | None:
    """A row that an older version wrote (no ``observed_at``) has no side onsets: the
    episode's start stands in for each side it shows (never a later, lower level)."""
    if observed is not None or drift_since is None:
        return None
    if seen and not any(k == kind for k, _ in seen):
        return None
    return drift_since


def record_checks(
    checks: Iterable[AudienceCheck],
    previous: dict[str, DriftMemory],
    now: datetime,
    closed_by_sync: str | None = None,
) -> list[list[Statement]]:
    """The statements persisting each check, one list per audience (a consistent unit).

    ``closed_by_sync`` names the actor when these checks follow our own sync, so an episode
    they close is recorded as closed by that sync rather than fixed outside.
    """
    none = DriftMemory()
    return [
        record_check(check, previous.get(check.audience.audience, none), now, closed_by_sync)
        for check in checks
    ]


def record_check(
    check: AudienceCheck, before: DriftMemory, now: datetime, closed_by: str | None
) -> list[Statement]:
    name = check.audience.audience
    return [
        *_update_status(check, now),
        *_track_episode(check, closed_by),
        _write_state(check),
        *_peak(check),
        *_write_members(name, before, check.memory),
        *exposure.record_revocations(check.revoked),
    ]


def _update_status(check: AudienceCheck, now: datetime) -> list[Statement]:
    """The status columns of sys_infra_state, only when they change (with an error row)."""
    name = check.audience.audience
    status, message = str(check.status), check.error_message
    differs = "audience = ? AND (sync_status IS NOT ? OR error_message IS NOT ?)"
    statements = []
    if check.status is Status.ERROR and message:
        statements.append(
            Statement(
                "INSERT INTO sys_infra_drift_error (at, audience, message) SELECT ?, ?, ?"
                f" WHERE EXISTS (SELECT 1 FROM sys_infra_state WHERE {differs})",
                (format_time(now), name, message, name, status, message),
            )
        )
    statements.append(
        Statement(
            "UPDATE sys_infra_state SET sync_status = ?, error_message = ?, updated_at = ?"
            f" WHERE {differs}",
            (status, message, format_time(now), name, status, message),
        )
    )
    return statements


def _track_episode(check: AudienceCheck, closed_by: str | None) -> list[Statement]:
    name = check.audience.audience
    if check.status is Status.ERROR:
        return []
    if check.status is Status.DRIFT:
        return [
            Statement(
                "INSERT INTO sys_infra_drift_episode (audience, namespace, opened_at)"
                " SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM sys_infra_drift_state"
                " WHERE audience = ? AND episode_id IS NOT NULL)",
                (name, check.audience.namespace, format_time(check.memory.drift_since), name),
            )
        ]
    reason = "sync" if closed_by else "external"
    return [
        Statement(
            "UPDATE sys_infra_drift_episode SET closed_at = ?, close_reason = ?, closed_by = ?"
            f" WHERE closed_at IS NULL AND id = {_OPEN_EPISODE}",
            (format_time(check.checked_at), reason, closed_by, name),
        )
    ]


def _write_state(check: AudienceCheck) -> Statement:
    memory, name = check.memory, check.audience.audience
    if check.status is Status.DRIFT:  # the open episode, or the one just opened
        episode = (
            f"coalesce({_OPEN_EPISODE},"
            " (SELECT max(id) FROM sys_infra_drift_episode WHERE audience = ?))"
        )
        episode_params: tuple[str, ...] = (name, name)
    elif check.status is Status.ERROR:  # an error keeps the episode open, as it was
        episode, episode_params = _OPEN_EPISODE, (name,)
    else:
        episode, episode_params = "NULL", ()
    return Statement(
        "INSERT INTO sys_infra_drift_state (audience, drift_since, episode_id, last_check_at,"
        " expected_count, actual_count, missing_count, extra_count, error_since,"
        " consecutive_errors, missing_since, extra_since, observed_at, missing_seconds_closed,"
        f" extra_seconds_closed) VALUES (?, ?, {episode}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
            name,
            format_time(memory.drift_since),
            *episode_params,
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


def _peak(check: AudienceCheck) -> list[Statement]:
    if check.status is not Status.DRIFT:
        return []
    return [
        Statement(
            "UPDATE sys_infra_drift_episode SET peak_missing = max(peak_missing, ?),"
            f" peak_extra = max(peak_extra, ?) WHERE id = {_OPEN_EPISODE}",
            (len(check.missing), len(check.extra), check.audience.audience),
        )
    ]


def _write_members(audience: str, before: DriftMemory, after: DriftMemory) -> list[Statement]:
    gone = sorted(before.first_seen.keys() - after.first_seen.keys())
    new = sorted(after.first_seen.keys() - before.first_seen.keys())
    statements = []
    for kind in Side:
        emails = [email for k, email in gone if k == kind]
        for part in chunks(emails, MAX_PARAMS - 2):
            statements.append(
                Statement(
                    "DELETE FROM sys_infra_drift_member WHERE audience = ? AND kind = ?"
                    f" AND email IN ({marks(len(part))})",
                    (audience, kind, *part),
                )
            )
    notes, known = after.notes, after.attributions
    statements += insert_rows(
        "INSERT OR REPLACE INTO sys_infra_drift_member (audience, kind, email, first_seen_at,"
        " note, attribution) VALUES",
        [
            (audience, *key, format_time(after.first_seen[key]), notes.get(key), _text(known, key))
            for key in new
        ],
    )
    kept = sorted(after.first_seen.keys() & before.first_seen.keys())
    if notes or before.notes:  # the common case: no member has a note, before or after
        statements += [
            Statement(
                "UPDATE sys_infra_drift_member SET note = ? WHERE audience = ? AND kind = ?"
                " AND email = ?",
                (notes.get(key), audience, *key),
            )
            for key in kept
            if notes.get(key) != before.notes.get(key)
        ]
    statements += [  # an attribution changes once or twice in a member's drift
        Statement(
            "UPDATE sys_infra_drift_member SET attribution = ? WHERE audience = ? AND kind = ?"
            " AND email = ?",
            (_text(known, key), audience, *key),
        )
        for key in kept
        if known.get(key) != before.attributions.get(key)
    ]
    return statements


def _text(known: dict[MemberKey, Attribution], key: MemberKey) -> str | None:
    attribution = known.get(key)
    return attribution_text(attribution) if attribution is not None else None


def forget_removed(now: datetime) -> list[Statement]:
    """Audiences gone from sys_infra_state: close their episodes and drop their state."""
    gone = "audience NOT IN (SELECT audience FROM sys_infra_state)"
    return [
        Statement(
            "UPDATE sys_infra_drift_episode SET closed_at = ?, close_reason = 'removed',"
            " closed_by = NULL WHERE closed_at IS NULL AND id IN"
            f" (SELECT episode_id FROM sys_infra_drift_state WHERE {gone})",
            (format_time(now),),
        ),
        Statement(f"DELETE FROM sys_infra_drift_member WHERE {gone}"),
        Statement(f"DELETE FROM sys_infra_drift_state WHERE {gone}"),
    ]


def record_cycle(cycle: CycleSummary) -> Statement:
    counts = cycle.counts
    return Statement(
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


def record_sync_time(audience: str, at: datetime) -> Statement:
    return Statement(
        "UPDATE sys_infra_state SET last_sync_at = ?, updated_at = ? WHERE audience = ?",
        (format_time(at), format_time(at), audience),
    )


def set_group_id(
    audience: str, group_id: str, at: datetime, resource_type: str = "access_group"
) -> Statement:
    """The group created for a pending audience; ``resource_type`` is the provider's
    (``access_group``, ``identitystore_group``), kept when vault-api already wrote one."""
    return Statement(
        "UPDATE sys_infra_state SET provider_resource_id = ?, provider_resource_type ="
        " coalesce(provider_resource_type, ?), updated_at = ? WHERE audience = ?",
        (group_id, resource_type, format_time(at), audience),
    )


def prune_history(before: datetime) -> list[Statement]:
    """Bounded retention: drop closed history older than ``before``."""
    cutoff = (format_time(before),)
    return [
        Statement("DELETE FROM sys_infra_drift_cycle WHERE started_at < ?", cutoff),
        Statement("DELETE FROM sys_infra_drift_error WHERE at < ?", cutoff),
        Statement(
            "DELETE FROM sys_infra_drift_episode WHERE closed_at IS NOT NULL AND closed_at < ?",
            cutoff,
        ),
        Statement(
            "DELETE FROM sys_infra_drift_audit WHERE started_at < ? AND result != 'in_progress'",
            cutoff,
        ),
        Statement("DELETE FROM sys_infra_drift_mail WHERE at < ?", cutoff),
        exposure.prune_revocations(before),
        # Audit-log entries that count for nothing once old: the manual ones stay (a counter).
        Statement(
            "DELETE FROM sys_infra_drift_group_change WHERE at < ? AND source != 'manual'",
            cutoff,
        ),
    ]
