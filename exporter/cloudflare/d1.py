"""Cloudflare D1's REST API: the Vault database when it lives in D1 (docs/design.md, "The
Vault on D1").

Same API, envelope, auth and budget as the Access calls (``client.py``): the D1 client is
given the Access client's ``RateLimitGate`` and ``ClientStats``, so a 429 from either API
pauses both, and every request counts in one budget (``api="d1"`` on /metrics).

Reads go to ``/raw`` (rows as arrays: the smallest answer); writes go as one ``batch``,
which D1 applies atomically. D1's transient failures ("internal error", "Network connection
lost", "storage operation exceeded timeout", 502/503/504...) are recognised by their message
whatever the HTTP status, and retried a few times, as is a dropped connection; SQL errors
(400, code 7500) are not. Sending a request again is safe even when D1 had applied it: reads
and the lease's compare-and-set change nothing twice, and every write batch of the Vault
store carries its idempotency key (``exporter/vault/ledger.py``). A call that got no answer
at all (a timeout) is not retried here: the store asks the ledger whether it landed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from exporter.cloudflare.ratelimit import ClientStats, RateLimitGate, scrub
from exporter.cloudflare.wire import NOT_JSON, CloudflareError, RateLimited, decode, first_error

log = logging.getLogger("vault_drift.d1")

TRANSIENT_MESSAGES = (
    "internal error",
    "network connection lost",
    "storage operation exceeded timeout",
    "exceeded timeout",
    "transient issue",
    "is overloaded",
    "reset because its code was updated",
    "please retry",
    "object to be reset",
)
TRANSIENT_STATUSES = (500, 502, 503, 504)
UNKNOWN_DATABASE_CODES = (7404, 7400)


class D1Error(CloudflareError):
    """A failed D1 call; ``transient`` when D1 says it may work if tried again."""

    def __init__(self, message: str, *, transient: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.transient = transient

    @property
    def unknown_database(self) -> bool:
        return self.status == 404 or self.code in UNKNOWN_DATABASE_CODES

    @property
    def not_allowed(self) -> bool:
        return self.status in (401, 403) or self.code == 10000


@dataclass(frozen=True)
class D1Result:
    """One statement's answer: ``/raw``'s columns and rows, and its ``meta``."""

    columns: list[str]
    rows: list[list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return _count(self.meta.get("changes"))

    @property
    def last_row_id(self) -> int | None:
        value = self.meta.get("last_row_id")
        return int(value) if isinstance(value, int | float) else None


class D1Client:
    """One D1 database over REST. Thread-safe (one ``requests.Session`` per client)."""

    def __init__(
        self,
        *,
        base_url: str,
        account_id: str,
        database_id: str,
        token: str,
        gate: RateLimitGate,
        stats: ClientStats,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        account = quote(account_id, safe="")
        self.database_id = database_id
        self._url = (
            f"{base_url.rstrip('/')}/accounts/{account}/d1/database/{quote(database_id, safe='')}"
        )
        self._token = token
        self._gate, self.stats = gate, stats
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._clock, self._sleep = clock, sleep
        with stats.lock:
            stats.d1_used = True

    def __repr__(self) -> str:
        return f"D1Client(database={self.database_id!r}, token=<redacted>)"

    def query(self, sql: str, params: Sequence[Any] = ()) -> D1Result:
        """One statement through ``/raw``."""
        return self._post({"sql": sql, "params": _bindable(params)}, "query")[0]

    def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[D1Result]:
        """Several statements as one ``batch``: all applied, in order, or none."""
        if not statements:
            return []
        body = {"batch": [{"sql": sql, "params": _bindable(params)} for sql, params in statements]}
        results = self._post(body, "batch")
        if len(results) != len(statements):
            raise D1Error(
                f"batch of {len(statements)} statements answered {len(results)} results",
                request="POST /d1/database/…/raw",
            )
        return results

    # -- plumbing -----------------------------------------------------------------------

    def _post(self, body: dict[str, Any], what: str) -> list[D1Result]:
        request = f"POST /d1/database/{self.database_id}/raw ({what})"
        for attempt in range(1, self._attempts + 1):
            try:
                return self._once(body, request)
            except RateLimited as exc:
                # A short pause is waited out by the next attempt's wait_turn; a long one fails.
                if attempt == self._attempts or exc.retry_after_seconds > self._timeout:
                    raise
            except D1Error as exc:
                if not exc.transient or attempt == self._attempts:
                    raise
                log.info("D1 transient error, retrying (%d/%d): %s", attempt, self._attempts, exc)
                self._sleep(self._backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, body: dict[str, Any], request: str) -> list[D1Result]:
        self._gate.take_turn(self._timeout, request)
        started = self._clock()
        try:
            response = self._session.post(
                f"{self._url}/raw",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=(self._timeout, self._timeout),
            )
        except requests.ConnectionError as exc:
            self.stats.count_d1_request("POST", None, self._clock() - started)
            # Refused, or dropped with the answer: safe to send again either way (see above).
            reason = f"connection error ({type(exc).__name__})"
            raise D1Error(reason, transient=True, request=request) from exc
        except requests.RequestException as exc:
            self.stats.count_d1_request("POST", None, self._clock() - started)
            raise D1Error(f"no answer ({type(exc).__name__})", request=request) from exc
        self.stats.count_d1_request("POST", response.status_code, self._clock() - started)
        if response.status_code == 429:
            raise self._gate.rate_limited(response, request, self._token)
        self._gate.on_success(started)
        self.stats.record_ratelimit_header(response.headers.get("Ratelimit"))
        return self._results(response, request)

    def _results(self, response: requests.Response, request: str) -> list[D1Result]:
        status, document = response.status_code, decode(response)
        if document is NOT_JSON or not isinstance(document, dict):
            raise D1Error(
                "invalid JSON in response",
                status=status,
                transient=status in TRANSIENT_STATUSES,
                request=request,
            )
        if status >= 300 or document.get("success") is not True:
            code, message = first_error(document)
            text = scrub(message, self._token) or response.reason or "request failed"
            transient = status in TRANSIENT_STATUSES or _is_transient(text)
            raise D1Error(text, status=status, code=code, transient=transient, request=request)
        items = document.get("result")
        if not isinstance(items, list):
            raise D1Error("result is not a list", status=status, request=request)
        results = [_result(item, status, request) for item in items]
        self.stats.count_d1_rows(
            sum(_count(r.meta.get("rows_read")) for r in results),
            sum(_count(r.meta.get("rows_written")) for r in results),
        )
        return results


def _result(item: Any, status: int, request: str) -> D1Result:
    if not isinstance(item, dict) or item.get("success") is False:
        raise D1Error("a statement of the batch failed", status=status, request=request)
    results = item.get("results") or {}
    columns, rows = results.get("columns", []), results.get("rows", [])
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise D1Error("malformed /raw result", status=status, request=request)
    meta = item.get("meta")
    return D1Result(columns, rows, meta if isinstance(meta, dict) else {})


def _bindable(params: Sequence[Any]) -> list[Any]:
    """JSON values D1 binds: booleans as 0/1 (D1 stores every bound number as REAL)."""
    return [int(value) if isinstance(value, bool) else value for value in params]


def _is_transient(message: str) -> bool:
    text = message.lower()
    return any(marker in text for marker in TRANSIENT_MESSAGES)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
