"""The Vault store on a SQLite file: each write in one transaction, short-lived connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from exporter.core.attribution import Coverage, GroupChange, OwnWrite
from exporter.core.exposure import LatencyTotals
from exporter.core.model import Audience, DriftMemory, Expected, Ignore
from exporter.core.settings import Settings
from exporter.vault import attribution, exposure, history, membership, operator, reporting, state
from exporter.vault.db import CACHE_KIB, VaultDB
from exporter.vault.sql import Outcome, Reader, Statement
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
            self._write([operator.seed_interval(seed_interval)])
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
        def read(conn: Reader) -> AudienceHistory:
            return AudienceHistory(
                history.recent_episodes(conn, audience),
                operator.audit_rows(conn, audience, limit=20),
            )

        return self._read(read)

    def changes(self) -> SqliteChangeFeed:
        return SqliteChangeFeed(self.db.path)

    def attribution_cache(
        self, group_ids: Collection[str], since: datetime
    ) -> tuple[dict[str, Coverage], list[GroupChange]]:
        return self._read(lambda conn: attribution.cached(conn, group_ids, since))

    def manual_change_counts(self) -> dict[str, int]:
        return self._read(attribution.manual_counts)

    def own_writes(self, since: datetime) -> list[OwnWrite]:
        return self._read(lambda conn: attribution.own_writes(conn, since))

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
        self._write(check_statements(record))

    def save_settings(self, settings: Settings) -> None:
        self._write(operator.save_settings(settings))

    def set_ignore(self, audience: str, ignore: Ignore, now: datetime) -> None:
        self._write([operator.set_ignore(audience, ignore, now)])

    def clear_ignore(self, audience: str) -> bool:
        return self._write([operator.clear_ignore(audience)])[0].changes > 0

    def start_audit(self, entry: AuditEntry, now: datetime) -> int:
        return int(self._write([operator.start_audit(entry, now)])[0].last_row_id or 0)

    def finish_audit(self, audit_id: int, result: str, reason: str | None, now: datetime) -> None:
        self._write([operator.finish_audit(audit_id, result, reason, now)])

    def record_group(self, audience: str, group_id: str, audit_id: int, now: datetime) -> None:
        self._write(
            [
                state.set_group_id(audience, group_id, now),
                operator.finish_audit(audit_id, "synced", None, now, group_id=group_id),
            ]
        )

    def record_mail(self, record: MailRecord) -> None:
        self._write([reporting.record_mail(record)])

    def mark_episode_mailed(self, episode_id: int, kind: str, at: datetime) -> None:
        self._write([reporting.mark_episode_mailed(episode_id, kind, at)])

    def record_group_changes(
        self, changes: Collection[GroupChange], coverage: Mapping[str, Coverage]
    ) -> None:
        statements = attribution.record(changes, coverage)
        if statements:
            self._write(statements)

    # -- plumbing -----------------------------------------------------------------------

    def _read(self, read: Callable[[Reader], T]) -> T:
        try:
            with self.db.connect() as conn:
                return read(conn)
        except sqlite3.Error as exc:
            raise VaultError(f"Vault unreadable: {exc}") from exc

    def _write(self, statements: Sequence[Statement]) -> list[Outcome]:
        """The statements of one write, in one transaction: all of them or none."""
        outcomes = []
        try:
            with self.db.transaction() as conn:
                for statement in statements:
                    cursor = conn.execute(statement.sql, statement.params)
                    outcomes.append(Outcome(max(cursor.rowcount, 0), cursor.lastrowid))
        except sqlite3.Error as exc:
            raise VaultError(f"Vault write failed: {exc}") from exc
        return outcomes


def check_statements(record: CheckRecord) -> list[Statement]:
    """Everything a check leaves behind, in order; the cycle's own record comes last."""
    return [statement for unit in check_units(record) for statement in unit]


def check_units(record: CheckRecord) -> list[list[Statement]]:
    """``check_statements`` cut into consistent units: one per audience (its status with its
    companion rows), then the removals and the pruning, then the cycle's record alone."""
    units = state.record_checks(
        record.checks, dict(record.previous), record.at, record.closed_by_sync
    )
    if record.synced_at is not None:
        for unit, check in zip(units, record.checks, strict=True):
            unit.append(state.record_sync_time(check.audience.audience, record.synced_at))
    tail: list[Statement] = []
    if record.present is not None:
        tail += state.forget_removed(record.at)
    if record.prune_before is not None:
        tail += state.prune_history(record.prune_before)
    if tail:
        units.append(tail)
    if record.cycle is not None:
        units.append([state.record_cycle(record.cycle)])
    return units


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
