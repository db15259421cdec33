"""A simulated Cloudflare D1 REST API over a SQLite file, mounted in the simulated Cloudflare.

``CloudflareSimulator.attach_d1`` serves it under the same base URL, token and request
budget as the Access groups (one API, one budget: a 429 from either is a 429 of both), with
the routes Cloudflare's own clients (the ``cloudflare`` SDK, wrangler) use:

- ``GET /client/v4/accounts/{acct}/d1/database`` (``name``, ``page``, ``per_page`` 10..10000)
  and ``GET .../d1/database/{id}``: the database in D1's shapes (``uuid``, ``name``,
  ``version``, ``created_at``; one database also ``file_size``, ``num_tables``,
  ``read_replication``), so ``wrangler d1 list`` / ``d1 info`` / ``d1 execute --remote`` work;
- ``POST .../d1/database/{id}/query`` and ``.../raw`` with ``{"sql", "params"}`` or
  ``{"batch": [{"sql", "params"}, ...]}``, one result per statement (``d1_engine.py`` says how
  the statements run and what D1 refuses);
- the errors: a route or a method Cloudflare has no route for, 404 7000 (as on the Access side);
  another account, 403 7403; an unknown database, 404 7404; a body that is not JSON, 400 7400.

What it does not model: creating, renaming, deleting, exporting or importing a database, time
travel, read replicas, jurisdictions.

Faults (``D1Faults``, drawn per request from a seeded generator, or armed once): 429 with
``retry-after`` (an overloaded database), a transient 7500 "internal error" or "Network
connection lost" answered before anything is applied, a batch failing at its n-th
statement (everything before it rolled back), and a write whose answer is lost after D1
committed it (``lose_next_answers``: 500, "Network connection lost", as D1 answers when the
connection to its Durable Object drops after the commit).

Control: ``POST /_sim/d1/faults`` (JSON of ``D1Faults`` fields), ``GET /_sim/d1/stats``.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.demo.d1_engine import D1Engine, D1Refused, writes
from exporter.demo.simulator_wire import (
    Reply,
    encode,
    failure,
    invalid_parameter,
    json_reply,
    no_route,
    positive_int,
    success,
)

D1_ROUTE = re.compile(r"/client/v4/accounts/([^/]+)/d1/database(?:/([^/]+)(?:/(query|raw))?)?/?")
D1_TREE = re.compile(r"/client/v4/accounts/[^/]+/d1(?:/.*)?")
SQL_ERROR = 7500
MIN_PER_PAGE, MAX_PER_PAGE, DEFAULT_PER_PAGE = 10, 10_000, 100
ACCOUNT_REFUSED = "The given account is not valid or is not authorized to access this service"


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
    lose_next_answers: int = 0  # the next writes are committed, then answered as lost


class D1Simulator:
    """One D1 database (a SQLite file) of one account; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        database_id: str = "00000000-0000-4000-8000-0000000000d1",
        name: str = "vault",
        latency_seconds: float = 0.0,
        faults: D1Faults | None = None,
    ) -> None:
        self.path = Path(path)
        self.database_id, self.name = database_id, name
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.created_at = created.replace("+00:00", "Z")
        self.latency_seconds = latency_seconds
        self.engine = D1Engine(self.path)
        self._lock = threading.Lock()
        self.faults = faults or D1Faults()
        self.requests = 0

    @property
    def faults(self) -> D1Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: D1Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)

    def close(self) -> None:
        self.engine.close()

    def execute_script(self, sql: str) -> None:
        """For building a sample database (vault-api's side): no D1 rules, no budget."""
        self.engine.execute_script(sql)

    # -- HTTP --------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return D1_TREE.fullmatch(path) is not None or path.startswith("/_sim/d1/")

    def handle(
        self,
        method: str,
        path: str,
        body: bytes,
        account_id: str,
        query: dict[str, list[str]] | None = None,
    ) -> Reply:
        """The reply to an authenticated, budgeted API request (the simulator checked both)."""
        match = D1_ROUTE.fullmatch(path)
        if match is None:
            return no_route()
        database, action = match[2], match[3]
        if method != ("POST" if action else "GET"):
            return no_route()  # Cloudflare routes by method and path, as on the Access side
        if match[1] != account_id:
            return failure(403, 7403, ACCOUNT_REFUSED)
        if database is None:
            return self._list(query or {})
        if database != self.database_id:
            return failure(404, 7404, f"The database {database} could not be found")
        if action is None:
            return success(200, encode(_only(self.describe(full=True), query or {})))
        return self._query(body, raw=action == "raw")

    def describe(self, *, full: bool = False) -> dict[str, Any]:
        """The database as D1 lists it (``full``: as ``GET .../d1/database/{id}`` answers)."""
        listed: dict[str, Any] = {
            "uuid": self.database_id,
            "name": self.name,
            "version": "production",
            "created_at": self.created_at,
        }
        if not full:
            return listed
        size, tables = self.engine.size_and_tables()
        return {
            **listed,
            "file_size": size,
            "num_tables": tables,
            "read_replication": {"mode": "disabled"},
        }

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
            requests = self.requests
        with self.engine.lock:
            return {
                "requests": requests,
                "statements": self.engine.statements,
                "rows_read": self.engine.rows_read,
                "rows_written": self.engine.rows_written,
            }

    @property
    def statements(self) -> int:
        return self.engine.statements

    @property
    def rows_read(self) -> int:
        return self.engine.rows_read

    @property
    def rows_written(self) -> int:
        return self.engine.rows_written

    # -- routes ------------------------------------------------------------------------

    def _list(self, query: dict[str, list[str]]) -> Reply:
        page = positive_int(query, "page", 1)
        per_page = positive_int(query, "per_page", DEFAULT_PER_PAGE)
        if page is None:
            return invalid_parameter("page", 2**31 - 1)
        if per_page is None or not MIN_PER_PAGE <= per_page <= MAX_PER_PAGE:
            return invalid_parameter("per_page", MAX_PER_PAGE)
        wanted = (query.get("name") or [""])[-1]
        databases = [self.describe()] if wanted in self.name else []
        shown = databases[(page - 1) * per_page : page * per_page]
        result_info = {
            "page": page,
            "per_page": per_page,
            "count": len(shown),
            "total_count": len(databases),
            "total_pages": math.ceil(len(databases) / per_page),
        }
        return success(200, encode(shown), result_info)

    def _query(self, body: bytes, *, raw: bool) -> Reply:
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return failure(400, 7400, "The request is malformed: body is not JSON")
        fault = self._draw()
        if fault is not None:
            return fault
        try:
            if isinstance(document, dict) and isinstance(document.get("batch"), list):
                results = self.engine.run_batch(document["batch"], raw, self._fail_at(document))
            elif isinstance(document, dict) and isinstance(document.get("sql"), str):
                params = document.get("params") or []
                results = self.engine.run_sql(document["sql"], params, raw)
            else:
                return failure(400, 7400, "The request is malformed: expected sql or batch")
        except D1Refused as exc:
            return failure(400, SQL_ERROR, str(exc))
        with self._lock:
            self.requests += 1
            lost = self._faults.lose_next_answers > 0 and any(r["meta"]["changes"] for r in results)
            if lost:
                self._faults.lose_next_answers -= 1
        if lost:
            return failure(500, SQL_ERROR, "D1_ERROR: Network connection lost.")
        return success(200, encode(results))

    def _fail_at(self, document: dict[str, Any]) -> int | None:
        """The statement the armed batch fault fails at, for a batch that writes (reads pass)."""
        with self._lock:
            fail_at = self._faults.fail_next_batch_at
            if fail_at is None or not writes(document["batch"]):
                return None
            self._faults.fail_next_batch_at = None
            return fail_at

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


def _only(database: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    """The fields a ``fields`` query asks for (``fields[]=a&fields[]=b`` or ``fields=a,b``)."""
    asked = [
        name
        for value in (query.get("fields") or []) + (query.get("fields[]") or [])
        for name in value.split(",")
        if name
    ]
    return {k: v for k, v in database.items() if k in asked} if asked else database
