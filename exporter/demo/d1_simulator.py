"""A simulated Cloudflare D1 REST API over a SQLite file, mounted in the simulated Cloudflare.

``CloudflareSimulator.attach_d1`` serves it under the same base URL, token and request
budget as the Access groups (one API, one budget: a 429 from either is a 429 of both):
``POST /client/v4/accounts/{acct}/d1/database/{id}/query`` and ``.../raw``, with
``{"sql", "params"}`` or ``{"batch": [{"sql", "params"}, ...]}``, answered in Cloudflare's
envelope, one result per statement with ``meta`` (SPEC §8).

It refuses what D1 (workerd) refuses, with D1's codes, so that the exporter cannot come to
depend on plain-SQLite behaviour: ``BEGIN``/``COMMIT``/``SAVEPOINT`` (a batch is the unit of
atomicity), ``ATTACH``, temporary tables, ``sqlite_*()`` functions, names starting ``_cf_``,
every PRAGMA outside D1's allow-list; more than 100 bound parameters; SQL text over 100,000
bytes; a value over 2 MB. Bound numbers are stored as REAL, as D1 does (``5`` in a TEXT
column reads back ``"5.0"``). In a multi-statement ``sql`` string the parameters bind to the
last statement only, and only its result is answered. A ``batch`` runs in one transaction.

Faults (``D1Faults``, drawn per request from a seeded generator, or armed once): 429 with
``retry-after`` (an overloaded database), a transient 7500 "internal error" or "Network
connection lost" answered before anything is applied, and a batch failing at its n-th
statement (everything before it rolled back). ``rows_read`` in ``meta`` is the number of
rows answered (SQLite does not say what it scanned: workerd's D1 does, see the tests).

Control: ``POST /_sim/d1/faults`` (JSON of ``D1Faults`` fields), ``GET /_sim/d1/stats``.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from exporter.demo.simulator_wire import Reply, encode, failure, json_reply, success

D1_PATH = re.compile(r"/client/v4/accounts/([^/]+)/d1/database/([^/]+)/(query|raw)/?")
MAX_SQL_BYTES = 100_000
MAX_PARAMS = 100  # bound parameters per statement
MAX_VALUE_BYTES = 2_000_000
SQL_ERROR = 7500
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


@dataclass
class D1Faults:
    rate_429: float = 0.0
    rate_transient: float = 0.0  # 7500 "internal error" (400) / "Network connection lost" (500)
    fail_next_batch_at: int | None = None  # the next batch fails at this statement (-1: last)
    retry_after_seconds: int = 1
    seed: int = 0
    times: int | None = None  # set: only the next `times` requests meet the faults above
    message: str | None = None  # the transient fault's answer instead (e.g. a SQL error)
    status: int = 400  # with message


class D1Refused(Exception):
    """What D1 answers with a 400 and code 7500."""


class D1Simulator:
    """One D1 database (a SQLite file) of one account; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        database_id: str = "00000000-0000-4000-8000-0000000000d1",
        latency_seconds: float = 0.0,
        faults: D1Faults | None = None,
    ) -> None:
        self.path = Path(path)
        self.database_id = database_id
        self.latency_seconds = latency_seconds
        self._lock = threading.Lock()  # D1: one connection behind a Durable Object
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMS)
        self._conn.set_authorizer(_authorize)
        self.faults = faults or D1Faults()
        self.requests = 0
        self.statements = 0
        self.rows_read = 0
        self.rows_written = 0

    @property
    def faults(self) -> D1Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: D1Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)

    def close(self) -> None:
        self._conn.close()

    # -- HTTP --------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return D1_PATH.fullmatch(path) is not None or path.startswith("/_sim/d1/")

    def handle(self, method: str, path: str, body: bytes, account_id: str) -> Reply:
        """The reply to an authenticated, budgeted API request (the simulator checked both)."""
        match = D1_PATH.fullmatch(path)
        if match is None or method != "POST":
            return failure(405, 10405, f"method {method} not allowed on {path}")
        if match[1] != account_id:
            return failure(404, 7003, f"Could not route to {path}")
        if match[2] != self.database_id:
            return failure(404, 7404, f"The database {match[2]} could not be found")
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return failure(400, 7400, "The request is malformed: body is not JSON")
        fault = self._draw()
        if fault is not None:
            return fault
        raw = match[3] == "raw"
        try:
            if isinstance(document, dict) and isinstance(document.get("batch"), list):
                results = self._batch(document["batch"], raw)
            elif isinstance(document, dict) and isinstance(document.get("sql"), str):
                results = [self._single(document["sql"], document.get("params") or [], raw)]
            else:
                return failure(400, 7400, "The request is malformed: expected sql or batch")
        except D1Refused as exc:
            return failure(400, SQL_ERROR, str(exc))
        with self._lock:
            self.requests += 1
        return success(200, encode(results))

    def control(self, method: str, path: str, body: bytes) -> Reply:
        if method == "POST" and path.rstrip("/") == "/_sim/d1/faults":
            try:
                self.faults = D1Faults(**json.loads(body or b"{}"))
            except (TypeError, ValueError) as exc:
                known = ", ".join(f.name for f in fields(D1Faults))
                return json_reply(400, {"error": f"bad faults: {exc}", "faults": known})
            return json_reply(200, asdict(self.faults))
        if method == "GET" and path.rstrip("/") == "/_sim/d1/stats":
            return json_reply(200, self.stats())
        return json_reply(404, {"error": f"no control route {method} {path}"})

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "statements": self.statements,
                "rows_read": self.rows_read,
                "rows_written": self.rows_written,
            }

    # -- SQL ---------------------------------------------------------------------------

    def execute_script(self, sql: str) -> None:
        """For building a sample database (vault-api's side): no D1 rules, no budget."""
        with self._lock:
            self._conn.set_authorizer(None)
            try:
                self._conn.executescript(sql)
            finally:
                self._conn.set_authorizer(_authorize)

    def _draw(self) -> Reply | None:
        faults = self._faults
        with self._lock:
            draw = self._random.random()
            if faults.times is not None:
                if faults.times <= 0:
                    return None
                faults.times -= 1
                draw = 0.0 if faults.rate_429 > 0 else faults.rate_429
        if draw < faults.rate_429:
            reply = failure(429, 971, "D1 DB is overloaded. Requests queued for too long.")
            reply.headers["retry-after"] = str(faults.retry_after_seconds)
            return reply
        if draw < faults.rate_429 + faults.rate_transient:
            if faults.message is not None:
                return failure(faults.status, SQL_ERROR, faults.message)
            if self._random.random() < 0.5:
                return failure(400, SQL_ERROR, "D1_ERROR: internal error; reference = sim")
            return failure(500, SQL_ERROR, "D1_ERROR: Network connection lost.")
        return None

    def _single(self, sql: str, params: list[Any], raw: bool) -> dict[str, Any]:
        statements = _split(sql)
        if not statements:
            raise D1Refused("D1_ERROR: No SQL statements detected.")
        with self._lock:
            result: dict[str, Any] = {}
            for index, text in enumerate(statements):
                last = index == len(statements) - 1
                result = self._run(text, params if last else [], raw)
            return result

    def _batch(self, batch: list[Any], raw: bool) -> list[dict[str, Any]]:
        with self._lock:
            fail_at = self._faults.fail_next_batch_at
            if fail_at is not None and _writes(batch):  # a write: reads pass
                self._faults.fail_next_batch_at = None
            else:
                fail_at = None
            self._conn.set_authorizer(None)
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.set_authorizer(_authorize)
            try:
                results = []
                for index, item in enumerate(batch):
                    if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
                        raise D1Refused("D1_ERROR: batch item without sql")
                    if fail_at is not None and index == (fail_at % len(batch)):
                        raise D1Refused("D1_ERROR: simulated failure in the batch: SQLITE_ERROR")
                    statements = _split(item["sql"])
                    params = item.get("params") or []
                    for position, text in enumerate(statements):
                        last = position == len(statements) - 1
                        result = self._run(text, params if last else [], raw)
                    results.append(result)
            except BaseException:
                self._rollback()
                raise
            self._conn.set_authorizer(None)
            self._conn.execute("COMMIT")
            self._conn.set_authorizer(_authorize)
            return results

    def _rollback(self) -> None:
        self._conn.set_authorizer(None)
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._conn.set_authorizer(_authorize)

    def _run(self, sql: str, params: list[Any], raw: bool) -> dict[str, Any]:
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise D1Refused("D1_ERROR: statement too long: SQLITE_TOOBIG")
        if not isinstance(params, list):
            raise D1Refused("D1_ERROR: params must be an array")
        bound = [_bind(value) for value in params]
        started = time.perf_counter()
        before = self._conn.total_changes
        try:
            cursor = self._conn.execute(sql, bound)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
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
        meta = {
            "served_by": "vault-drift-d1-simulator",
            "duration": round((time.perf_counter() - started) * 1000, 3),
            "changes": changes,
            "last_row_id": cursor.lastrowid or 0,
            "changed_db": changes > 0,
            "size_after": 0,
            "rows_read": len(rows),
            "rows_written": changes,
        }
        if raw:
            results: Any = {"columns": columns, "rows": [list(row) for row in rows]}
        else:
            results = [dict(zip(columns, row, strict=True)) for row in rows]
        return {"results": results, "success": True, "meta": meta}


def _writes(batch: list[Any]) -> bool:
    reads = (str(item.get("sql", "")) if isinstance(item, dict) else "" for item in batch)
    return any(not sql.lstrip().upper().startswith("SELECT") for sql in reads)


def _bind(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)  # D1 stores every bound number as REAL
    if value is None or isinstance(value, str):
        return value
    raise D1Refused(f"D1_ERROR: Type '{type(value).__name__}' not supported for value")


def _split(sql: str) -> list[str]:
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


def _code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return str(name) if name else "SQLITE_ERROR"


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any) -> int:
    """D1's authorizer, as far as the exporter can meet it."""
    deny, ok = sqlite3.SQLITE_DENY, sqlite3.SQLITE_OK
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return deny
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
