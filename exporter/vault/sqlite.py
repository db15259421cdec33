"""The Vault store on a SQLite file: each write in one transaction, short-lived connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from exporter.core.model import Audience, DriftMemory, Expected
from exporter.vault import decisions, membership, state
from exporter.vault.check_reads import LiveReads
from exporter.vault.db import CACHE_KIB, VaultDB
from exporter.vault.sql import Outcome, Reader, Statement
from exporter.vault.statement_store import StatementStore, check_statements
from exporter.vault.store import (
    AuditEntry,
    CheckReads,
    CheckRecord,
    VaultError,
)

T = TypeVar("T")


class SqliteStore(StatementStore):
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
            self._write([decisions.seed_interval(seed_interval)])
        return self

    # -- reads --------------------------------------------------------------------------

    def check_reads(self, audiences: Collection[str] | None, ended_since: datetime) -> CheckReads:
        """Each read when the check asks it, from the file."""
        return LiveReads(self)

    def audiences(self) -> list[Audience]:
        return self._read(membership.list_audiences)

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        names = list(audiences)
        return self._read(lambda conn: membership.expected_members(conn, names))

    def memories(self) -> dict[str, DriftMemory]:
        return self._read(state.load_memories)

    def changes(self) -> SqliteChangeFeed:
        return SqliteChangeFeed(self.db.path)

    # -- writes -------------------------------------------------------------------------

    def record_checks(self, record: CheckRecord) -> None:
        self._write(check_statements(record))

    def start_audit(self, entry: AuditEntry, now: datetime) -> int:
        return int(self._write([decisions.start_audit(entry, now)])[0].last_row_id or 0)

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
