"""vault-drift's history, read from the Vault DB into pandas frames.

The exporter writes the companion tables (``exporter/sql/companion.sql``); this module only
reads them. Every time column comes back as a ``datetime64[..., UTC]`` column.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from reports.duration import iso_utc, parse_utc

PERIODS = {"1d": timedelta(days=1), "7d": timedelta(days=7)}

# Rows are pre-selected in SQL on the stored ISO strings with this margin, then filtered
# exactly on parsed times: a writer using "+00:00" or fractional seconds still sorts right.
_SQL_MARGIN = timedelta(days=1)


class UnknownPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime


def period_ending(label: str, now: datetime) -> Period:
    if label not in PERIODS:
        raise UnknownPeriod(f"unknown period {label!r}: use one of {', '.join(PERIODS)}")
    return Period(label, now - PERIODS[label], now)


@dataclass(frozen=True)
class ReportSettings:
    """The keys of ``sys_infra_drift_settings`` reports use, with their defaults."""

    warning_threshold_seconds: int = 3600
    critical_threshold_seconds: int = 86400
    digest_hour_utc: int = 8
    history_retention_days: int = 90


@dataclass(frozen=True)
class History:
    """What a digest is computed from: the period's history and the state at its end."""

    period: Period
    state: pd.DataFrame  # one row per audience of sys_infra_state, with drift_since/episode_id
    members: pd.DataFrame  # audience, kind, email, first_seen_at, note: the current drift
    episodes: pd.DataFrame  # episodes overlapping the period
    cycles: pd.DataFrame  # check cycles started in the period
    errors: pd.DataFrame  # errors recorded in the period
    syncs: pd.DataFrame  # audit rows started in the period
    settings: ReportSettings
    last_digest_at: datetime | None  # the last digest mail that went out


def open_db(path: str | Path, *, write: bool = False) -> sqlite3.Connection:
    """Open an existing Vault DB (never create one); read-only unless ``write``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    mode = "rw" if write else "ro"
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode={mode}", uri=True, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def read_settings(conn: sqlite3.Connection) -> ReportSettings:
    stored = dict(conn.execute("SELECT key, value FROM sys_infra_drift_settings").fetchall())
    defaults = ReportSettings()
    values: dict[str, int] = {}
    for key, default in vars(defaults).items():
        try:
            values[key] = int(json.loads(stored[key])) if key in stored else default
        except (ValueError, TypeError):
            values[key] = default  # the exporter validates settings; a bad one falls back here
    return ReportSettings(**values)


def last_digest_sent_at(conn: sqlite3.Connection) -> datetime | None:
    row = conn.execute(
        "SELECT at FROM sys_infra_drift_mail WHERE kind = 'digest' AND result = 'sent'"
        " ORDER BY at DESC, id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else parse_utc(row[0])


def load_history(conn: sqlite3.Connection, period: Period) -> History:
    return History(
        period=period,
        state=load_state(conn),
        members=load_members(conn),
        episodes=load_episodes(conn, period),
        cycles=_in_period(_query(conn, _CYCLES, period), "started_at", period),
        errors=_in_period(_query(conn, _ERRORS, period), "at", period),
        syncs=_in_period(_query(conn, _SYNCS, period), "started_at", period),
        settings=read_settings(conn),
        last_digest_at=last_digest_sent_at(conn),
    )


def load_state(conn: sqlite3.Connection) -> pd.DataFrame:
    return _query(
        conn,
        "SELECT s.audience, s.namespace, s.provider, s.sync_status, s.error_message,"
        " s.last_sync_at, d.drift_since, d.episode_id, d.missing_count, d.extra_count"
        " FROM sys_infra_state s LEFT JOIN sys_infra_drift_state d USING (audience)"
        " ORDER BY s.audience",
    )


def load_members(conn: sqlite3.Connection) -> pd.DataFrame:
    return _query(
        conn,
        "SELECT audience, kind, email, first_seen_at, note FROM sys_infra_drift_member"
        " ORDER BY audience, kind, email",
    )


def load_episodes(conn: sqlite3.Connection, period: Period) -> pd.DataFrame:
    frame = _query(conn, _EPISODES, period)
    opened_before_end = frame["opened_at"] < period.end
    open_at_start = frame["closed_at"].isna() | (frame["closed_at"] >= period.start)
    return frame[opened_before_end & open_at_start].reset_index(drop=True)


_EPISODES = (
    "SELECT id, audience, namespace, opened_at, closed_at, peak_missing, peak_extra,"
    " close_reason, closed_by, critical_notified_at, resolution_notified_at"
    " FROM sys_infra_drift_episode"
    " WHERE opened_at <= :end AND (closed_at IS NULL OR closed_at >= :start)"
    " ORDER BY opened_at, id"
)
_CYCLES = (
    "SELECT id, started_at, finished_at, trigger, scope, vault_ok, cloudflare_ok,"
    " total, pending, synced, drift, error, duration_seconds FROM sys_infra_drift_cycle"
    " WHERE started_at BETWEEN :start AND :end ORDER BY started_at, id"
)
_ERRORS = (
    "SELECT id, at, audience, message FROM sys_infra_drift_error"
    " WHERE at BETWEEN :start AND :end ORDER BY at, id"
)
_SYNCS = (
    "SELECT id, started_at, finished_at, audience, action, trigger, actor, mode, forced,"
    " added, removed, added_count, removed_count, result, reason FROM sys_infra_drift_audit"
    " WHERE started_at BETWEEN :start AND :end ORDER BY started_at, id"
)
_TIME_COLUMNS = {
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
}


def _query(conn: sqlite3.Connection, sql: str, period: Period | None = None) -> pd.DataFrame:
    params = {}
    if period is not None:
        params = {
            "start": iso_utc(period.start - _SQL_MARGIN),
            "end": iso_utc(period.end + _SQL_MARGIN),
        }
    cursor = conn.execute(sql, params)
    columns = [column[0] for column in cursor.description]
    frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
    for column in _TIME_COLUMNS.intersection(frame.columns):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _in_period(frame: pd.DataFrame, column: str, period: Period) -> pd.DataFrame:
    inside = (frame[column] >= period.start) & (frame[column] <= period.end)
    return frame[inside].reset_index(drop=True)
