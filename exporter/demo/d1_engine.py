"""The SQL side of the simulated D1: one SQLite connection that refuses what D1 refuses.

``d1_simulator.py`` routes the REST calls and draws the faults; this module runs the
statements, the way D1's REST API does (README, "Vault on Cloudflare D1"; docs/design.md):

- a ``sql`` string of several statements answers one result per statement, in order, all
  applied or none (Cloudflare's schema: "executed as a batch"); the parameters bind to the
  last statement only, and a placeholder in an earlier one is refused with workerd's message
  (workerd's own binding, behind the test gateway, answers the last statement only);
- a ``batch`` answers one result per item and runs in one transaction; an item of several
  statements answers its last;
- refused, with D1's codes and messages: ``BEGIN``/``COMMIT``/``SAVEPOINT``/``RELEASE``
  (workerd's message names ``state.storage.transaction()``), ``ATTACH``, temporary tables,
  ``sqlite_*()`` functions, names starting ``_cf_``, every PRAGMA outside D1's allow-list; more
  than 100 bound parameters; SQL text over 100,000 bytes; a value over 2 MB;
- bound numbers are stored as REAL (``5`` in a TEXT column reads back ``"5.0"``);
- ``meta`` carries the fields of Cloudflare's ``QueryResult.meta`` (``changes``,
  ``last_row_id``, ``changed_db``, ``size_after``, ``rows_read``, ``rows_written``,
  ``duration``, ``timings.sql_duration_ms``, ``served_by_*``). ``rows_read`` is the number of
  rows answered (SQLite does not say what it scanned: workerd's D1 does, see the tests).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MAX_SQL_BYTES = 100_000
MAX_PARAMS = 100  # bound parameters per statement
MAX_VALUE_BYTES = 2_000_000
ALLOWED_PRAGMAS = frozenset(
    {
        "table_list",
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "quick_check",
        "data_version",
        "foreign_keys",
        "defer_foreign_keys",
        "optimize",
        "case_sensitive_like",
        "ignore_check_constraints",
        "legacy_alter_table",
        "recursive_triggers",
        "reverse_unordered_selects",
    }
)
# workerd's answers, word for word (checked through the gateway of tests/d1).
TRANSACTION_REFUSED = (
    "D1_ERROR: To execute a transaction, please use the state.storage.transaction() or"
    " state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT"
    " statements. The JavaScript API is safer because it will automatically roll back on"
    " exceptions, and because it interacts correctly with Durable Objects' automatic atomic"
    " write coalescing."
)
PARAMS_ON_LAST_ONLY = (
    "D1_ERROR: When executing multiple SQL statements in a single call, only the last"
    " statement can have parameters."
)
WRONG_BINDINGS = "D1_ERROR: Wrong number of parameter bindings for SQL query."
SERVED_BY = {
    "served_by": "vault-drift-d1-simulator",
    "served_by_region": "WEUR",
    "served_by_colo": "CDG",
    "served_by_primary": True,
}


class D1Refused(Exception):
    """What D1 answers with a 400 and code 7500."""


class D1Engine:
    """One D1 database: a SQLite file behind one connection (D1: one Durable Object)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self._transaction_refused = False
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMS)
        self._conn.set_authorizer(self._authorize)
        self.statements = 0
        self.rows_read = 0
        self.rows_written = 0

    def close(self) -> None:
        self._conn.close()

    def execute_script(self, sql: str) -> None:
        """For building a sample database (vault-api's side): no D1 rules, no budget."""
        with self.lock, self._unchecked():
            self._conn.executescript(sql)

    def size_and_tables(self) -> tuple[int, int]:
        """The database's size in bytes and its number of tables (D1's ``file_size`` and
        ``num_tables``; ``_cf_`` and ``sqlite_`` tables are D1's own)."""
        with self.lock:
            return self._size(), self._tables()

    # -- the two request forms ------------------------------------------------------------

    def run_sql(self, sql: str, params: list[Any], raw: bool) -> list[dict[str, Any]]:
        """A ``sql`` string: one result per statement, all applied or none."""
        statements = split(sql)
        if not statements:
            raise D1Refused("D1_ERROR: No SQL statements detected.")
        last = len(statements) - 1
        with self.lock, self._transaction():
            results = []
            for index, text in enumerate(statements):
                try:
                    results.append(self._run(text, params if index == last else [], raw))
                except D1Refused as exc:
                    if str(exc) == WRONG_BINDINGS and params and index < last:
                        raise D1Refused(PARAMS_ON_LAST_ONLY) from None
                    raise
            return results

    def run_batch(self, batch: list[Any], raw: bool, fail_at: int | None) -> list[dict[str, Any]]:
        """A ``batch``: one result per item (an item of several statements answers its last),
        all applied or none; ``fail_at`` makes the item at that index fail."""
        with self.lock, self._transaction():
            results = []
            for index, item in enumerate(batch):
                if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
                    raise D1Refused("D1_ERROR: batch item without sql")
                if fail_at is not None and index == (fail_at % len(batch)):
                    raise D1Refused("D1_ERROR: simulated failure in the batch: SQLITE_ERROR")
                statements = split(item["sql"])
                if not statements:
                    raise D1Refused("D1_ERROR: No SQL statements detected.")
                params = item.get("params") or []
                for position, text in enumerate(statements):
                    result = self._run(text, params if position == len(statements) - 1 else [], raw)
                results.append(result)
            return results

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _unchecked(self) -> Iterator[None]:
        """The simulator's own statements (transactions, sizes): D1's rules do not apply."""
        self._conn.set_authorizer(None)
        try:
            yield
        finally:
            self._conn.set_authorizer(self._authorize)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._unchecked():
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with self._unchecked():
                self._conn.execute("ROLLBACK")
            raise
        with self._unchecked():
            self._conn.execute("COMMIT")

    def _size(self) -> int:
        with self._unchecked():
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(page_size)

    def _tables(self) -> int:
        with self._unchecked():
            row = self._conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'"
            ).fetchone()
        return int(row[0])

    def _run(self, sql: str, params: list[Any], raw: bool) -> dict[str, Any]:
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise D1Refused("D1_ERROR: statement too long: SQLITE_TOOBIG")
        if not isinstance(params, list):
            raise D1Refused("D1_ERROR: params must be an array")
        bound = [_bind(value) for value in params]
        started = time.perf_counter()
        before = self._conn.total_changes
        self._transaction_refused = False
        try:
            cursor = self._conn.execute(sql, bound)
            rows = cursor.fetchall()
        except sqlite3.ProgrammingError as exc:
            if "bindings" in str(exc):
                raise D1Refused(WRONG_BINDINGS) from None
            raise D1Refused(f"D1_ERROR: {exc}: SQLITE_ERROR") from None
        except sqlite3.Error as exc:
            if self._transaction_refused:
                raise D1Refused(TRANSACTION_REFUSED) from None
            raise D1Refused(f"D1_ERROR: {exc}: {_code(exc)}") from None
        columns = [d[0] for d in cursor.description or ()]
        changes = self._conn.total_changes - before
        for row in rows:
            for value in row:
                if isinstance(value, str | bytes) and len(value) > MAX_VALUE_BYTES:
                    raise D1Refused("D1_ERROR: string or blob too big: SQLITE_TOOBIG")
        self.statements += 1
        self.rows_read += len(rows)
        self.rows_written += changes
        milliseconds = round((time.perf_counter() - started) * 1000, 3)
        meta = {
            **SERVED_BY,
            "duration": milliseconds,
            "changes": changes,
            "last_row_id": cursor.lastrowid or 0,
            "changed_db": changes > 0,
            "size_after": self._size(),
            "rows_read": len(rows),
            "rows_written": changes,
            "timings": {"sql_duration_ms": milliseconds},
        }
        if raw:
            results: Any = {"columns": columns, "rows": [list(row) for row in rows]}
        else:
            results = [dict(zip(columns, row, strict=True)) for row in rows]
        return {"results": results, "success": True, "meta": meta}

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
    ) -> int:
        """D1's authorizer, as far as the exporter can meet it."""
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            self._transaction_refused = True
            return sqlite3.SQLITE_DENY
        return authorize(action, arg1, arg2, db)


def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None) -> int:
    deny, ok = sqlite3.SQLITE_DENY, sqlite3.SQLITE_OK
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return deny
    if action == sqlite3.SQLITE_PRAGMA:
        return ok if (arg1 or "").lower() in ALLOWED_PRAGMAS else deny
    if action in (
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
    ):
        return deny
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower().startswith("sqlite_"):
        return deny
    if db == "temp" and action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_CREATE_TABLE):
        return deny
    for name in (arg1, arg2):
        if name and name.lower().startswith("_cf_"):
            return deny
    return ok


def writes(batch: list[Any]) -> bool:
    """Whether a batch has a statement other than a SELECT (the faults that fail a batch
    let reads pass)."""
    reads = (str(item.get("sql", "")) if isinstance(item, dict) else "" for item in batch)
    return any(not sql.lstrip().upper().startswith("SELECT") for sql in reads)


def split(sql: str) -> list[str]:
    """The statements of a string, as SQLite would run them one after the other."""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        statements.append(current.strip().rstrip(";"))
    return statements


def _bind(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)  # D1 stores every bound number as REAL
    if value is None or isinstance(value, str):
        return value
    raise D1Refused(f"D1_ERROR: Type '{type(value).__name__}' not supported for value")


def _code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return str(name) if name else "SQLITE_ERROR"
