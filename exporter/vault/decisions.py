"""The operator's persisted decisions and records: settings, ignores, the sync audit."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any, cast

from exporter.core.model import AutoSync, Ignore
from exporter.core.settings import FEED_OFF, FEEDS, Settings
from exporter.core.times import format_time, parse_time
from exporter.vault.sql import Reader, Statement
from exporter.vault.store import AuditEntry, AuditRow


def load_settings(conn: Reader) -> Settings:
    """Saved settings over the defaults; unknown keys and values are ignored."""
    saved = {
        k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM sys_infra_drift_settings")
    }
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {k: v for k, v in saved.items() if k in known}
    if "auto_sync" in values:
        try:
            values["auto_sync"] = AutoSync(values["auto_sync"])
        except ValueError:
            del values["auto_sync"]
    if values.get("cloudflare_feed", FEED_OFF) not in FEEDS:
        del values["cloudflare_feed"]
    return Settings(**values)


def seed_interval(seconds: int) -> Statement:
    """``VAULT_DRIFT_CHECK_INTERVAL`` fills only a database that has no interval yet."""
    return Statement(
        "INSERT OR IGNORE INTO sys_infra_drift_settings (key, value) VALUES (?, ?)",
        ("check_interval_seconds", json.dumps(seconds)),
    )


def save_settings(settings: Settings) -> list[Statement]:
    return [
        Statement(
            "INSERT INTO sys_infra_drift_settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (k, json.dumps(v)),
        )
        for k, v in settings.as_document().items()
    ]


def load_ignores(conn: Reader) -> dict[str, Ignore]:
    return {
        audience: Ignore(parse_time(until) or datetime.min, reason, created_by)
        for audience, until, reason, created_by in conn.execute(
            "SELECT audience, until, reason, created_by FROM sys_infra_drift_ignore"
        )
    }


def set_ignore(audience: str, ignore: Ignore, now: datetime) -> Statement:
    return Statement(
        "INSERT INTO sys_infra_drift_ignore (audience, until, reason, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (audience) DO UPDATE SET until = excluded.until,"
        " reason = excluded.reason, created_by = excluded.created_by,"
        " created_at = excluded.created_at",
        (audience, format_time(ignore.until), ignore.reason, ignore.created_by, format_time(now)),
    )


def clear_ignore(audience: str) -> Statement:
    """Its ``changes`` say whether there was an ignore to clear."""
    return Statement("DELETE FROM sys_infra_drift_ignore WHERE audience = ?", (audience,))


def start_audit(entry: AuditEntry, now: datetime) -> Statement:
    """Record an attempt before anything is sent, so a crash mid-sync leaves a trace.

    The new row's id is the statement's ``last_row_id``.
    """
    return Statement(
        "INSERT INTO sys_infra_drift_audit (started_at, audience, action, trigger, actor, mode,"
        " forced, group_id, added, removed, added_count, removed_count, result)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'in_progress')",
        (
            format_time(now),
            entry.audience,
            entry.action,
            entry.trigger,
            entry.actor,
            entry.mode,
            int(entry.forced),
            entry.group_id,
            json.dumps(list(entry.added)),
            json.dumps(list(entry.removed)),
            len(entry.added),
            len(entry.removed),
        ),
    )


def finish_audit(
    audit_id: int,
    result: str,
    reason: str | None,
    now: datetime,
    group_id: str | None = None,
) -> Statement:
    return Statement(
        "UPDATE sys_infra_drift_audit SET result = ?, reason = ?, finished_at = ?,"
        " group_id = coalesce(?, group_id) WHERE id = ?",
        (result, reason, format_time(now), group_id, audit_id),
    )


def audit_rows(
    conn: Reader,
    audience: str | None = None,
    limit: int = 20,
    result: str | None = None,
) -> list[AuditRow]:
    query = "SELECT * FROM sys_infra_drift_audit WHERE 1=1"
    params: list[Any] = []
    if audience is not None:
        query += " AND audience = ?"
        params.append(audience)
    if result is not None:
        query += " AND result = ?"
        params.append(result)
    cursor = conn.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit))
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        row["added"] = json.loads(row["added"])
        row["removed"] = json.loads(row["removed"])
        row["forced"] = bool(row["forced"])
        rows.append(cast(AuditRow, row))
    return rows
