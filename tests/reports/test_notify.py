"""The critical-drift mail: once per episode (persisted), a resolution note, failures retried."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.reports import NOW, PUBLIC_URL, SmtpServer, bare_vault, remembered_snapshot

from exporter.core.model import Ignore, Status
from exporter.core.snapshot import Snapshot
from exporter.vault import EpisodeRecord, SqliteStore
from reports.mail_log import MailAttempt
from reports.notify import CriticalNotifier

OPENED = datetime.fromisoformat("2026-11-23T06:00:00+00:00")  # lms-admin's open episode (7)


def mail_rows(db: Path) -> list[tuple[str, int | None, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT kind, episode_id, result FROM sys_infra_drift_mail WHERE kind != 'digest'"
            " ORDER BY id"
        ).fetchall()
    conn.close()
    return rows


def episode(db: Path, episode_id: int) -> tuple[str | None, str | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT critical_notified_at, resolution_notified_at FROM sys_infra_drift_episode"
            " WHERE id = ?",
            (episode_id,),
        ).fetchone()
    conn.close()
    return row


class Notified:
    """A notifier on the store of ``db``, run with the snapshot the store remembers."""

    def __init__(self, store: SqliteStore, notifier: CriticalNotifier) -> None:
        self.store, self.notifier = store, notifier

    def run_once(self, snapshot: Snapshot | None = None) -> list[MailAttempt]:
        return self.notifier.run_once(snapshot or remembered_snapshot(self.store))


def notifier(
    db: Path, server: SmtpServer | None, at: datetime, calls: list[tuple[str, str]]
) -> Notified:
    smtp = server.settings() if server else None
    store = SqliteStore(db).open()
    on_mail = lambda k, r: calls.append((k, r))  # noqa: E731
    return Notified(store, CriticalNotifier(store, smtp, PUBLIC_URL, lambda: at, on_mail))


def test_critical_mail_once_per_episode_even_after_a_restart(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    calls: list[tuple[str, str]] = []
    attempts = notifier(history_db, smtp_server, NOW, calls).run_once()
    assert [(a.kind, a.episode_id, a.result) for a in attempts] == [("critical", 7, "sent")]
    assert calls == [("critical", "sent")]
    ((_, _, message),) = smtp_server.inbox.messages
    assert message["Subject"] == '[TPB Vault] Drift detected in "lms-admin" (exposure)'
    assert episode(history_db, 7) == ("2026-11-25T08:00:00Z", None)

    later = NOW + timedelta(hours=3)
    assert notifier(history_db, smtp_server, later, calls).run_once() == []  # a new process
    assert len(smtp_server.inbox.messages) == 1
    assert mail_rows(history_db) == [("critical", 7, "sent")]


def test_resolution_note_after_the_episode_closes(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    calls: list[tuple[str, str]] = []
    notifier(history_db, smtp_server, NOW, calls).run_once()
    with sqlite3.connect(history_db) as conn:
        conn.execute(
            "UPDATE sys_infra_drift_episode SET closed_at = '2026-11-25T09:00:00Z',"
            " close_reason = 'sync', closed_by = 'alice@tpb.ai' WHERE id = 7"
        )
    conn.close()
    at = NOW + timedelta(hours=1, minutes=5)
    attempts = notifier(history_db, smtp_server, at, calls).run_once()
    assert [(a.kind, a.episode_id, a.result) for a in attempts] == [("resolved", 7, "sent")]
    message = smtp_server.inbox.messages[-1][2]
    assert message["Subject"] == '[TPB Vault] Drift resolved in "lms-admin"'
    assert "Lasted: 2 days 3 hours" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert episode(history_db, 7)[1] == "2026-11-25T09:05:00Z"
    assert notifier(history_db, smtp_server, at, calls).run_once() == []
    assert calls == [("critical", "sent"), ("resolved", "sent")]


# lms-admin's episode has extra members from its start: an exposure, critical after the extra
# critical threshold (1h), not the missing one (24h).
@pytest.mark.parametrize(("age", "sent"), [(timedelta(hours=1) - timedelta(seconds=1), 0),
                                           (timedelta(hours=1), 1)])  # fmt: skip
def test_critical_threshold_boundary(
    history_db: Path, smtp_server: SmtpServer, age: timedelta, sent: int
) -> None:
    notifier(history_db, smtp_server, OPENED + age, []).run_once()
    assert len(smtp_server.inbox.messages) == sent


def test_ignored_audience_gets_no_critical_mail_until_the_ignore_expires(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    with sqlite3.connect(history_db) as conn:
        conn.execute(
            "INSERT INTO sys_infra_drift_ignore VALUES ('lms-admin', '2026-11-25T12:00:00Z',"
            " 'migration', 'alice', '2026-11-24T12:00:00Z')"
        )
    conn.close()
    assert notifier(history_db, smtp_server, NOW, []).run_once() == []
    at = datetime.fromisoformat("2026-11-25T12:00:00+00:00")
    assert len(notifier(history_db, smtp_server, at, []).run_once()) == 1


def test_failure_is_recorded_and_retried_once_the_server_is_up(
    history_db: Path,
    smtp_factory: Callable[..., SmtpServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_factory(start=False)  # nothing listens on its port yet
    calls: list[tuple[str, str]] = []
    with caplog.at_level(logging.WARNING, logger="vault_drift.mail"):
        attempts = notifier(history_db, server, NOW, calls).run_once()
    assert [(a.kind, a.result) for a in attempts] == [("critical", "failed")]
    assert calls == [("critical", "failed")]
    assert "not sent" in caplog.text and "lms-admin" in caplog.text
    assert episode(history_db, 7) == (None, None)

    server.start()
    at = NOW + timedelta(minutes=15)
    attempts = notifier(history_db, server, at, calls).run_once()
    assert [(a.kind, a.result) for a in attempts] == [("critical", "sent")]
    assert calls[-1] == ("critical", "sent")
    assert mail_rows(history_db) == [("critical", 7, "failed"), ("critical", 7, "sent")]
    assert episode(history_db, 7)[0] == "2026-11-25T08:15:00Z"


def test_mail_off_does_nothing(history_db: Path) -> None:
    calls: list[tuple[str, str]] = []
    assert notifier(history_db, None, NOW, calls).run_once() == []
    assert calls == [] and mail_rows(history_db) == []


def test_vault_database_error_never_raises(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    bare = bare_vault(tmp_path / "bare.db")  # never opened as a store: every read of ours fails
    smtp = smtp_server.settings()
    notify = CriticalNotifier(SqliteStore(bare), smtp, PUBLIC_URL, lambda: NOW)
    with caplog.at_level(logging.ERROR, logger="vault_drift.mail"):
        assert notify.run_once(Snapshot()) == []
    assert "Vault database error" in caplog.text


def test_critical_and_ignored_are_the_snapshots_to_say(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    """The store only says which episodes had their mail: the check's snapshot decides."""
    notify = notifier(history_db, smtp_server, NOW, [])
    remembered = remembered_snapshot(notify.store)
    admin = remembered.checks["lms-admin"]
    ignored = replace(remembered, ignores={"lms-admin": Ignore(NOW + timedelta(hours=1), "x")})
    in_error = replace(remembered, checks={"lms-admin": replace(admin, status=Status.ERROR)})
    patient = replace(remembered, settings=replace(remembered.settings,
                                                   critical_threshold_seconds=7 * 86400,
                                                   extra_critical_threshold_seconds=7 * 86400))  # fmt: skip
    for snapshot in (ignored, in_error, patient, Snapshot()):
        assert notify.run_once(snapshot) == []
    assert smtp_server.inbox.messages == [] and mail_rows(history_db) == []
    assert [a.episode_id for a in notify.run_once(remembered)] == [7]


class CountingStore(SqliteStore):
    """The real store, counting how often the notifier asks for unmailed episodes."""

    asked = 0

    def episodes_awaiting_critical_mail(self) -> list[EpisodeRecord]:
        self.asked += 1
        return super().episodes_awaiting_critical_mail()


def test_no_critical_drift_in_the_snapshot_no_episode_read(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    store = CountingStore(history_db).open()
    notify = CriticalNotifier(store, smtp_server.settings(), PUBLIC_URL, lambda: NOW)
    assert notify.run_once(Snapshot()) == []
    assert store.asked == 0
    assert len(notify.run_once(remembered_snapshot(store))) == 1
    assert store.asked == 1
