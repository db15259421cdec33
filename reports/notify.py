"""The critical-drift mail (once per episode) and the resolution note that follows it.

"Once" is persisted in ``sys_infra_drift_episode.critical_notified_at`` /
``resolution_notified_at``, set only after the SMTP server accepted the mail: a crash
between the two can repeat one mail (at least once), a failure never loses one (it is
retried on the next run).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from reports.digest import member_list
from reports.duration import iso_utc, parse_utc
from reports.history import open_db, read_settings
from reports.mail import MailError, SmtpSettings, build_message, send
from reports.mail_log import MailAttempt, OnMail, ignore_mail, record_attempt
from reports.render import (
    CriticalAlert,
    RenderedMail,
    ResolutionNote,
    render_critical,
    render_resolved,
)

log = logging.getLogger("vault_drift.mail")


class CriticalNotifier:
    """Call :meth:`run_once` after each check cycle; it never raises."""

    def __init__(
        self,
        db_path: str | Path,
        smtp: SmtpSettings | None,
        public_url: str,
        clock: Callable[[], datetime],
        on_mail: OnMail = ignore_mail,
    ) -> None:
        self.db_path = db_path
        self.smtp = smtp
        self.public_url = public_url
        self.clock = clock
        self.on_mail = on_mail

    def run_once(self) -> list[MailAttempt]:
        if self.smtp is None:
            return []
        try:
            conn = open_db(self.db_path, write=True)
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot open the Vault database for drift mail: %s", exc)
            return []
        try:
            return self._notify(conn, self.smtp)
        except sqlite3.Error as exc:
            log.error("drift mail: Vault database error: %s", exc)
            return []
        except Exception:  # the exporter's check loop must survive a bug here
            log.exception("drift mail failed unexpectedly")
            return []
        finally:
            conn.close()

    def _notify(self, conn: sqlite3.Connection, smtp: SmtpSettings) -> list[MailAttempt]:
        now = self.clock()
        attempts = []
        for alert in critical_alerts(conn, now):
            mail = render_critical(alert, self.public_url)
            attempt = self._deliver(conn, smtp, mail, "critical", alert.episode_id, alert.audience)
            if attempt.result == "sent":
                _mark(conn, "critical_notified_at", alert.episode_id, now)
            attempts.append(attempt)
        for note in resolution_notes(conn):
            mail = render_resolved(note, self.public_url)
            attempt = self._deliver(conn, smtp, mail, "resolved", note.episode_id, note.audience)
            if attempt.result == "sent":
                _mark(conn, "resolution_notified_at", note.episode_id, now)
            attempts.append(attempt)
        return attempts

    def _deliver(
        self,
        conn: sqlite3.Connection,
        smtp: SmtpSettings,
        mail: RenderedMail,
        kind: str,
        episode_id: int,
        audience: str,
    ) -> MailAttempt:
        now = self.clock()
        message = build_message(mail.subject, mail.html, mail.text, {}, smtp, sent_at=now)
        try:
            send(message, smtp)
        except MailError as exc:
            log.warning("%s mail for %r (episode %d) not sent: %s", kind, audience, episode_id, exc)
            attempt = MailAttempt(kind, "failed", episode_id, audience, str(exc))
        else:
            log.info("%s mail for %r (episode %d) sent", kind, audience, episode_id)
            attempt = MailAttempt(kind, "sent", episode_id, audience)
        record_attempt(conn, now, attempt, len(smtp.mail_to))
        self.on_mail(kind, attempt.result)
        return attempt


def critical_alerts(conn: sqlite3.Connection, now: datetime) -> list[CriticalAlert]:
    """Open episodes at least as old as the critical threshold, not mailed yet, not ignored.

    An ignored audience raises no drift alert (SPEC §2); its mail goes out if the episode is
    still critical when the ignore expires.
    """
    critical = read_settings(conn).critical_threshold_seconds
    rows = conn.execute(
        "SELECT e.id, e.audience, e.namespace, e.opened_at FROM sys_infra_drift_episode e"
        " WHERE e.closed_at IS NULL AND e.critical_notified_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM sys_infra_drift_ignore i"
        "                 WHERE i.audience = e.audience AND i.until > ?)"
        " ORDER BY e.opened_at, e.id",
        (iso_utc(now),),
    ).fetchall()
    alerts = []
    for episode_id, audience, namespace, opened in rows:
        opened_at = parse_utc(opened)
        age = (now - opened_at).total_seconds()
        if age < critical:
            continue
        members = conn.execute(
            "SELECT kind, email, note FROM sys_infra_drift_member WHERE audience = ?", (audience,)
        ).fetchall()
        notes = {email: note for _, email, note in members if note is not None}
        alerts.append(
            CriticalAlert(
                episode_id=episode_id,
                audience=audience,
                namespace=namespace,
                opened_at=opened_at,
                duration_seconds=age,
                missing=member_list(
                    [e for kind, e, _ in members if kind == "missing"], notes=notes
                ),
                extra=member_list([e for kind, e, _ in members if kind == "extra"], notes=notes),
            )
        )
    return alerts


def resolution_notes(conn: sqlite3.Connection) -> list[ResolutionNote]:
    rows = conn.execute(
        "SELECT id, audience, namespace, opened_at, closed_at, close_reason, closed_by"
        " FROM sys_infra_drift_episode WHERE closed_at IS NOT NULL"
        " AND critical_notified_at IS NOT NULL AND resolution_notified_at IS NULL"
        " ORDER BY closed_at, id"
    ).fetchall()
    return [
        ResolutionNote(row[0], row[1], row[2], parse_utc(row[3]), parse_utc(row[4]), row[5], row[6])
        for row in rows
    ]


def _mark(conn: sqlite3.Connection, column: str, episode_id: int, now: datetime) -> None:
    with conn:
        conn.execute(
            f"UPDATE sys_infra_drift_episode SET {column} = ? WHERE id = ? AND {column} IS NULL",
            (iso_utc(now), episode_id),
        )
