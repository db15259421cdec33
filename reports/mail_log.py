"""``sys_infra_drift_mail``: one row per mail attempt, so nothing is sent twice."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from reports.duration import iso_utc

OnMail = Callable[[str, str], None]
"""Told of every mail attempt: (kind, result); the exporter passes its sent / failed counter."""


def ignore_mail(kind: str, result: str) -> None:
    """The default ``OnMail``: nobody is counting."""


@dataclass(frozen=True)
class MailAttempt:
    kind: str  # digest | critical | resolved
    result: str  # sent | failed
    episode_id: int | None = None
    audience: str | None = None
    detail: str | None = None


def record_attempt(
    conn: sqlite3.Connection, at: datetime, attempt: MailAttempt, recipients: int
) -> None:
    with conn:
        conn.execute(
            "INSERT INTO sys_infra_drift_mail (at, kind, episode_id, recipients, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                iso_utc(at),
                attempt.kind,
                attempt.episode_id,
                recipients,
                attempt.result,
                attempt.detail,
            ),
        )


def scheduled_digest_sent_since(conn: sqlite3.Connection, since: datetime) -> bool:
    """Whether a scheduled digest went out at or after ``since``."""
    row = conn.execute(
        "SELECT 1 FROM sys_infra_drift_mail WHERE kind = 'digest' AND result = 'sent'"
        " AND detail LIKE 'scheduled%' AND at >= ? LIMIT 1",
        (iso_utc(since),),
    ).fetchone()
    return row is not None
