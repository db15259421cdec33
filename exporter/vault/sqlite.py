"""The Vault store on a SQLite file: each write in one transaction, short-lived connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from exporter.core.exposure import LatencyTotals
from exporter.core.model import Audience, DriftMemory, Expected, Ignore
from exporter.core.settings import Settings
from exporter.vault import exposure, history, membership, operator, reporting, state
from exporter.vault.db import CACHE_KIB, VaultDB
from exporter.vault.store import (
    AudienceHistory,
    AuditEntry,
    CheckRecord,
    EpisodeRecord,
    MailRecord,
    PeriodHistory,
    VaultError,
)

T = TypeVar("T")


class SqliteStore:
    """A Vault SQLite file beside vault-api. ``open()`` checks it and creates our tables."""

    def __init__(self, path: str | Path) -> None:
        self.db = VaultDB(path)

    @property
    def path(self) -> Path:
        return self.db.path

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.db.path)!r})"

    def open(self, seed_interval: int | None = None) -> SqliteStore:
        """Check the file, migrate the companion tables, seed the interval of a new database."""
        self.db.open()
        if seed_interval is not None:
            with self._transaction() as conn:
                operator.seed_interval(conn, seed_interval)
        return self

    # -- reads --------------------------------------------------------------------------

    def audiences(self) -> list[Audience]:
        return self._read(membership.list_audiences)

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        names = list(audiences)
        return self._read(lambda conn: membership.expected_members(conn, names))

    def memories(self) -> dict[str, DriftMemory]:
        return self._read(state.load_memories)

    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]:
        return self._read(exposure.revocation_totals)

    def settings(self) -> Settings:
        return self._read(operator.load_settings)

    def ignores(self) -> dict[str, Ignore]:
        return self._read(operator.load_ignores)

    def audit(
        self, audience: str | None = None, *, result: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        return self._read(lambda conn: operator.audit_rows(conn, audience, limit, result))

    def history(self, audience: str) -> AudienceHistory:
        def read(conn: sqlite3.Connection) -> AudienceHistory:
            return AudienceHistory(
                history.recent_episodes(conn, audience),
                operator.audit_rows(conn, audience, limit=20),
            )

        return self._read(read)

    def changes(self) -> SqliteChangeFeed:
        return SqliteChangeFeed(self.db.path)

    def period_history(self, start: datetime, end: datetime) -> PeriodHistory:
        return self._read(lambda conn: reporting.period_history(conn, start, end))

    def mail_log(self, kind: str | None = None) -> list[MailRecord]:
        return self._read(lambda conn: reporting.mail_log(conn, kind))

    def episodes_awaiting_critical_mail(self) -> list[EpisodeRecord]:
        return self._read(reporting.episodes_awaiting_critical_mail)

    def episodes_awaiting_resolution_note(self) -> list[EpisodeRecord]:
        return self._read(reporting.episodes_awaiting_resolution_note)

    # -- writes -------------------------------------------------------------------------

    def record_checks(self, record: CheckRecord) -> None:
        with self._transaction() as conn:
            state.record_checks(
                conn, record.checks, dict(record.previous), record.at, record.closed_by_sync
            )
            if record.synced_at is not None:
                for check in record.checks:
                    state.record_sync_time(conn, check.audience.audience, record.synced_at)
            if record.present is not None:
                state.forget_removed(conn, record.present, record.at)
            if record.cycle is not None:
                state.record_cycle(conn, record.cycle)
            if record.prune_before is not None:
                state.prune_history(conn, record.prune_before)

    def save_settings(self, settings: Settings) -> None:
        with self._transaction() as conn:
            operator.save_settings(conn, settings)

    def set_ignore(self, audience: str, ignore: Ignore, now: datetime) -> None:
        with self._transaction() as conn:
            operator.set_ignore(conn, audience, ignore, now)

    def clear_ignore(self, audience: str) -> bool:
        with self._transaction() as conn:
            return operator.clear_ignore(conn, audience)

    def start_audit(self, entry: AuditEntry, now: datetime) -> int:
        with self._transaction() as conn:
            return operator.start_audit(conn, entry, now)

    def finish_audit(self, audit_id: int, result: str, reason: str | None, now: datetime) -> None:
        with self._transaction() as conn:
            operator.finish_audit(conn, audit_id, result, reason, now)

    def record_group(self, audience: str, group_id: str, audit_id: int, now: datetime) -> None:
        with self._transaction() as conn:
            state.set_group_id(conn, audience, group_id, now)
            operator.finish_audit(conn, audit_id, "synced", None, now, group_id=group_id)

    def record_mail(self, record: MailRecord) -> None:
        with self._transaction() as conn:
            reporting.record_mail(conn, record)

    def mark_episode_mailed(self, episode_id: int, kind: str, at: datetime) -> None:
        with self._transaction() as conn:
            reporting.mark_episode_mailed(conn, episode_id, kind, at)

    # -- plumbing -----------------------------------------------------------------------

    def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self.db.connect() as conn:
                return read(conn)
        except sqlite3.Error as exc:
            raise VaultError(f"Vault unreadable: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.db.transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise VaultError(f"Vault write failed: {exc}") from exc


class SqliteChangeFeed:
    """``PRAGMA data_version`` on one long-lived connection: it moves when another commits."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=5, check_same_thread=False)
        self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._version: int | None = None

    def changed(self) -> bool:
        try:
            current = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise VaultError(f"watching the Vault DB failed: {exc}") from exc
        moved, self._version = current != self._version, current
        return bool(moved)

    def forget(self) -> None:
        """The last change could not be handled: report it again on the next call."""
        self._version = None

    def close(self) -> None:
        self._conn.close()
