"""What reports read and write: a period's history, the mail log, the episodes to mail about.

Times are stored as ISO-8601 text and come back as aware datetimes. Rows of a period are
pre-selected in SQL on the stored text with a margin, then kept exactly on parsed times: a
writer using ``+00:00`` or fractional seconds still sorts right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from exporter.core.times import format_time, parse_time
from exporter.vault.sql import Reader, Statement
from exporter.vault.store import EpisodeRecord, MailRecord, PeriodHistory, Rows

_SQL_MARGIN = timedelta(days=1)
_TIME_COLUMNS = frozenset(
    {
        "opened_at",
        "closed_at",
        "critical_notified_at",
        "resolution_notified_at",
        "started_at",
        "finished_at",
        "at",
        "first_seen_at",
        "drift_since",
        "last_sync_at",
        "missing_since",
        "extra_since",
        "observed_at",
        "revoked_at",
        "removed_at",
        "created_at",
        "expires_at",
        "ended_at",
    }
)
_STATE = (
    "SELECT s.audience, s.namespace, s.provider, s.sync_status, s.error_message,"
    " s.last_sync_at, d.drift_since, d.episode_id, d.missing_count, d.extra_count,"
    " d.missing_since, d.extra_since, d.observed_at"
    " FROM sys_infra_state s LEFT JOIN sys_infra_drift_state d USING (audience)"
    " ORDER BY s.audience"
)
_MEMBERS = (
    "SELECT audience, kind, email, first_seen_at, note FROM sys_infra_drift_member"
    " ORDER BY audience, kind, email"
)
_EPISODES = (
    "SELECT id, audience, namespace, opened_at, closed_at, peak_missing, peak_extra,"
    " close_reason, closed_by, critical_notified_at, resolution_notified_at"
    " FROM sys_infra_drift_episode"
    " WHERE opened_at <= ? AND (closed_at IS NULL OR closed_at >= ?)"
    " ORDER BY opened_at, id"
)
_CYCLES = (
    "SELECT id, started_at, finished_at, trigger, scope, vault_ok, cloudflare_ok,"
    " total, pending, synced, drift, error, duration_seconds FROM sys_infra_drift_cycle"
    " WHERE started_at BETWEEN ? AND ? ORDER BY started_at, id"
)
_ERRORS = (
    "SELECT id, at, audience, message FROM sys_infra_drift_error"
    " WHERE at BETWEEN ? AND ? ORDER BY at, id"
)
_REVOCATIONS = (
    "SELECT id, audience, namespace, provider, email, first_seen_at, revoked_at,"
    " duration_seconds FROM sys_infra_drift_revocation"
    " WHERE revoked_at >= ? AND first_seen_at <= ? ORDER BY revoked_at, id"
)
_EXEMPTIONS = (
    "SELECT audience, email, side, reason, owner, created_at, expires_at, ended_at, ended_by,"
    " end_reason FROM sys_infra_drift_exemption"
    " WHERE ended_at IS NULL OR created_at >= ? OR ended_at >= ? ORDER BY id"
)
_SESSIONS = (
    "SELECT id, audience, namespace, provider, email, reason, removed_at, first_seen_at, state,"
    " attempts, revoked_at, last_error FROM sys_infra_drift_session_revocation"
    " WHERE revoked_at BETWEEN ? AND ? OR state = 'pending' ORDER BY id"
)
_SYNCS = (
    "SELECT id, started_at, finished_at, audience, action, trigger, actor, mode, forced,"
    " added, removed, added_count, removed_count, result, reason FROM sys_infra_drift_audit"
    " WHERE started_at BETWEEN ? AND ? ORDER BY started_at, id"
)


def period_history(conn: Reader, start: datetime, end: datetime) -> PeriodHistory:
    low, high = format_time(start - _SQL_MARGIN), format_time(end + _SQL_MARGIN)
    between, overlap = (low, high), (high, low)

    def started_inside(column: str) -> Callable[[dict[str, Any]], bool]:
        return lambda row: start <= row[column] <= end

    def overlapping(row: dict[str, Any]) -> bool:
        closed = row["closed_at"]
        return bool(row["opened_at"] < end and (closed is None or closed >= start))

    return PeriodHistory(
        state=_rows(conn, _STATE),
        members=_rows(conn, _MEMBERS),
        episodes=_rows(conn, _EPISODES, overlap, overlapping),
        cycles=_rows(conn, _CYCLES, between, started_inside("started_at")),
        errors=_rows(conn, _ERRORS, between, started_inside("at")),
        syncs=_rows(conn, _SYNCS, between, started_inside("started_at")),
        revocations=_rows(
            conn,
            _REVOCATIONS,
            between,
            lambda row: bool(row["revoked_at"] >= start and row["first_seen_at"] < end),
        ),
        exemptions=_rows(
            conn,
            _EXEMPTIONS,
            (low, low),
            lambda row: (
                row["ended_at"] is None or row["ended_at"] >= start or row["created_at"] >= start
            ),
        ),
        sessions=_rows(
            conn,
            _SESSIONS,
            between,
            lambda row: row["state"] == "pending" or start <= row["revoked_at"] <= end,
        ),
    )


def mail_log(conn: Reader, kind: str | None = None) -> list[MailRecord]:
    """Every mail attempt kept (of one kind), oldest first."""
    rows = conn.execute(
        "SELECT at, kind, result, recipients, episode_id, detail FROM sys_infra_drift_mail"
        " WHERE ?1 IS NULL OR kind = ?1 ORDER BY at, id",
        (kind,),
    ).fetchall()
    return [
        MailRecord(_time(at), kind, result, recipients, episode, detail)
        for at, kind, result, recipients, episode, detail in rows
    ]


def record_mail(record: MailRecord) -> Statement:
    return Statement(
        "INSERT INTO sys_infra_drift_mail (at, kind, episode_id, recipients, result, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            format_time(record.at),
            record.kind,
            record.episode_id,
            record.recipients,
            record.result,
            record.detail,
        ),
    )


def episodes_awaiting_critical_mail(conn: Reader) -> list[EpisodeRecord]:
    """Open episodes whose critical mail has not gone out, oldest first."""
    return _episodes(
        conn,
        "closed_at IS NULL AND critical_notified_at IS NULL ORDER BY opened_at, id",
    )


def episodes_awaiting_resolution_note(conn: Reader) -> list[EpisodeRecord]:
    """Closed episodes whose critical mail went out and whose resolution note has not."""
    return _episodes(
        conn,
        "closed_at IS NOT NULL AND critical_notified_at IS NOT NULL"
        " AND resolution_notified_at IS NULL ORDER BY closed_at, id",
    )


_MAILED_COLUMNS = {"critical": "critical_notified_at", "resolved": "resolution_notified_at"}


def mark_episode_mailed(episode_id: int, kind: str, at: datetime) -> Statement:
    """The episode's ``kind`` mail (critical | resolved) went out at ``at``; a first mark stays."""
    if kind not in _MAILED_COLUMNS:
        raise ValueError(f"no mail mark for kind {kind!r}")
    column = _MAILED_COLUMNS[kind]
    return Statement(
        f"UPDATE sys_infra_drift_episode SET {column} = ? WHERE id = ? AND {column} IS NULL",
        (format_time(at), episode_id),
    )


def _episodes(conn: Reader, where: str) -> list[EpisodeRecord]:
    rows = conn.execute(
        "SELECT id, audience, namespace, opened_at, closed_at, close_reason, closed_by"
        f" FROM sys_infra_drift_episode WHERE {where}"
    ).fetchall()
    return [
        EpisodeRecord(id_, audience, namespace, _time(opened), parse_time(closed), reason, by)
        for id_, audience, namespace, opened, closed, reason, by in rows
    ]


def _rows(
    conn: Reader,
    sql: str,
    params: Sequence[Any] = (),
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Rows:
    cursor = conn.execute(sql, params)
    columns = tuple(column[0] for column in cursor.description)
    times = _TIME_COLUMNS.intersection(columns)
    at = [i for i, name in enumerate(columns) if name in times]
    rows = []
    for raw in cursor:
        row = list(raw)
        for i in at:
            row[i] = parse_time(row[i])
        if keep is None or keep(dict(zip(columns, row, strict=True))):
            rows.append(tuple(row))
    return Rows(columns, rows, frozenset(times))


def _time(text: str) -> datetime:
    """A NOT NULL time column."""
    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"not a time: {text!r}")
    return moment
