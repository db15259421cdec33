"""What attribution persists (docs/design.md, "Attribution"): the audit log's entries about
the audiences' groups, how far the log was read for each group, and what the exporter itself
wrote (its audit)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from exporter.core.attribution import Coverage, GroupChange, OwnWrite
from exporter.core.times import format_time, parse_time
from exporter.vault.sql import Reader, Statement, insert_rows

_CHANGE_COLUMNS = (
    "audit_log_id, group_id, at, actor_email, actor_id, actor_type, token_id, interface,"
    " action, added, removed, source"
)
_GROUPS = "SELECT value FROM json_each(?)"


def cached(
    conn: Reader, group_ids: Collection[str], since: datetime
) -> tuple[dict[str, Coverage], list[GroupChange]]:
    """How far each group's log was read, and its entries from ``since`` on."""
    groups = json.dumps(sorted(group_ids))
    coverage = {}
    for group_id, start, end in conn.execute(
        "SELECT group_id, since, until FROM sys_infra_drift_audit_read"
        f" WHERE group_id IN ({_GROUPS})",
        (groups,),
    ):
        first, last = parse_time(start), parse_time(end)
        if first is not None and last is not None:
            coverage[group_id] = Coverage(first, last)
    rows = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM sys_infra_drift_group_change"
        f" WHERE group_id IN ({_GROUPS}) AND at >= ? ORDER BY at, audit_log_id",
        (groups, format_time(since)),
    )
    return coverage, [change for row in rows if (change := _change(row)) is not None]


def _change(row: tuple[Any, ...]) -> GroupChange | None:
    log_id, group_id, at, email, actor_id, actor_type, token_id, interface, action, *rest = row
    added, removed, source = rest
    when = parse_time(at)
    if when is None:
        return None
    return GroupChange(
        audit_log_id=log_id,
        group_id=group_id,
        at=when,
        actor_email=email,
        actor_id=actor_id,
        actor_type=actor_type,
        token_id=token_id,
        interface=interface,
        action=action,
        added=_emails(added),
        removed=_emails(removed),
        source=source,
    )


def _emails(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    values = json.loads(text)
    return frozenset(values) if isinstance(values, list) else None


def record(changes: Collection[GroupChange], coverage: Mapping[str, Coverage]) -> list[Statement]:
    """One listing's entries (each kept once, whatever reads it again) and how far it read."""
    rows = [
        (
            c.audit_log_id,
            c.group_id,
            format_time(c.at),
            c.actor_email,
            c.actor_id,
            c.actor_type,
            c.token_id,
            c.interface,
            c.action,
            _json(c.added),
            _json(c.removed),
            c.source or "manual",
        )
        for c in changes
    ]
    statements = insert_rows(
        f"INSERT OR IGNORE INTO sys_infra_drift_group_change ({_CHANGE_COLUMNS}) VALUES", rows
    )
    statements += insert_rows(
        "INSERT INTO sys_infra_drift_audit_read (group_id, since, until) VALUES",
        [(g, format_time(c.since), format_time(c.until)) for g, c in sorted(coverage.items())],
        " ON CONFLICT (group_id) DO UPDATE SET since = excluded.since, until = excluded.until",
    )
    return statements


def _json(emails: frozenset[str] | None) -> str | None:
    return None if emails is None else json.dumps(sorted(emails))


def manual_counts(conn: Reader) -> dict[str, int]:
    """Per group, the edits read from the audit log that were neither vault-api's nor ours."""
    return {
        group_id: int(count)
        for group_id, count in conn.execute(
            "SELECT group_id, count(*) FROM sys_infra_drift_group_change"
            " WHERE source = 'manual' GROUP BY group_id"
        )
    }


def own_writes(conn: Reader, since: datetime) -> list[OwnWrite]:
    """The exporter's syncs and group creations that may have reached Cloudflare since
    ``since`` (a blocked or no-op sync sent nothing)."""
    writes = []
    for group_id, started, finished, added, removed in conn.execute(
        "SELECT group_id, started_at, finished_at, added, removed FROM sys_infra_drift_audit"
        " WHERE group_id IS NOT NULL AND result IN ('synced', 'error', 'in_progress')"
        " AND coalesce(finished_at, started_at) >= ? ORDER BY id",
        (format_time(since),),
    ):
        start = parse_time(started)
        if start is None:
            continue
        writes.append(
            OwnWrite(
                group_id,
                start,
                parse_time(finished),
                frozenset(e.lower() for e in json.loads(added)),
                frozenset(e.lower() for e in json.loads(removed)),
            )
        )
    return writes
