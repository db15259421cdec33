"""Opening the Vault database safely beside vault-api, and creating our companion tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from exporter.vault.sql import Reader
from exporter.vault.store import VaultError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
# SQLite's default page cache (2 MiB) thrashes on the membership query of a big Vault: the
# user lookups re-read the same index pages from the OS, a second of system time at 1M
# memberships. 16 MiB per connection keeps them; connections are short-lived.
CACHE_KIB = 16384
REQUIRED_TABLES = ("iam_user", "iam_group", "iam_user_group", "iam_application", "sys_infra_state")


class VaultDB:
    """A Vault SQLite file. Connections are short-lived and per use, so threads never share one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"VaultDB({str(self.path)!r})"

    def open(self) -> VaultDB:
        """Check the file and create or migrate the companion tables; VaultError if unusable."""
        if not self.path.is_file():
            raise VaultError(f"Vault database {self.path} not found")
        try:
            with self.connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                require_tables(conn)
                migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise VaultError(f"Vault database {self.path}: {_explain(exc)}") from None
        return self

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; use ``transaction`` for grouped writes."""
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes of one step commit together or not at all (BEGIN IMMEDIATE: no deadlock)."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def require_tables(conn: Reader) -> None:
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [name for name in REQUIRED_TABLES if name not in present]
    if missing:
        raise VaultError(f"not a Vault database: missing tables {', '.join(missing)}")


def companion_ddl() -> list[str]:
    """The statements of companion.sql, one by one (comments dropped first: they hold ';')."""
    text = resources.files("exporter").joinpath("sql/companion.sql").read_text()
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def migrate(conn: Reader) -> None:
    """Create and migrate the companion tables, one statement at a time (also on D1, where
    a batch or a script is not needed: every statement is idempotent)."""
    for statement in companion_ddl():  # IF NOT EXISTS: safe to run at every start
        conn.execute(statement)
    _add_missing_columns(conn)
    # One statement, so that two processes starting together never write two version rows.
    conn.execute(
        "INSERT INTO sys_infra_drift_schema (version) SELECT ?"
        " WHERE NOT EXISTS (SELECT 1 FROM sys_infra_drift_schema)",
        (SCHEMA_VERSION,),
    )
    row = conn.execute("SELECT max(version) FROM sys_infra_drift_schema").fetchone()
    if row[0] > SCHEMA_VERSION:
        raise VaultError(
            f"companion schema version {row[0]} is newer than this vault-drift ({SCHEMA_VERSION})"
        )


# Columns added after a table was first shipped: nullable, so older vault-drift versions still
# read and write the table (no schema version bump, which would make them refuse the file).
ADDED_COLUMNS = (
    ("sys_infra_drift_member", "note", "TEXT"),
    ("sys_infra_drift_member", "attribution", "TEXT"),
    ("sys_infra_drift_state", "missing_since", "TEXT"),
    ("sys_infra_drift_state", "extra_since", "TEXT"),
    ("sys_infra_drift_state", "observed_at", "TEXT"),
    ("sys_infra_drift_state", "missing_seconds_closed", "REAL"),
    ("sys_infra_drift_state", "extra_seconds_closed", "REAL"),
)


def _add_missing_columns(conn: Reader) -> None:
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _explain(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return "read-only: vault-drift needs write access for its sys_infra_drift_* tables"
    if "not a database" in text or "malformed" in text:
        return f"corrupt or not an SQLite database ({text})"
    return text
