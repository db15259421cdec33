"""The Vault store on Cloudflare D1, over its REST API (SPEC §8): the same SQL as on SQLite.

Reads go through ``/raw``, one request per read (a few reads share one batch). Writes are the
statements of ``state``/``operator``/``reporting`` sent as one ``batch`` each, which D1
applies atomically; a check cycle too big for one request goes as several batches, each a
consistent unit (an audience's status with its companion rows), the cycle's own record last.

Expected members are read with the set-based query of ``membership.py``, in pages of
audiences (ascending names) whose answer stays under a byte budget: each page names its
audiences in one JSON parameter, and the query itself cuts the answer at the budget, so no
answer comes near D1's limits whatever the estimate said. An audience whose page did not
arrive is an error, never synced or drift.

D1 has no change signal over REST: ``changes()`` never reports one (the watcher does not run
on D1; vault-api's notification and the periodic check are the whole story).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exporter.cloudflare.d1 import D1Client, D1Error
from exporter.cloudflare.wire import CloudflareError
from exporter.core.model import Audience, DriftMemory, Expected
from exporter.core.times import format_time
from exporter.vault import membership, operator, state
from exporter.vault.db import REQUIRED_TABLES, migrate
from exporter.vault.sql import Outcome, Reader, RowsCursor, Statement
from exporter.vault.sqlite import check_units
from exporter.vault.statement_store import StatementStore
from exporter.vault.store import (
    AuditEntry,
    CheckRecord,
    VaultError,
)

log = logging.getLogger("vault_drift.d1")

PAGE_BYTES = 8_000_000  # members' JSON per answer (D1: 2 MB per value, 30 s per request)
BATCH_STATEMENTS = 2_000  # per write request, whole units only
BATCH_BYTES = 2_000_000  # of SQL and parameters per write request
GUESS_MEMBERS = 1_000  # an audience never read yet: Cloudflare's rule limit per group
GUESS_BYTES_PER_MEMBER = 48
LEASE_NAME = "writer"

# The page's audiences come as one JSON array parameter; the answer is cut where the running
# size passes the budget (the first audience always comes, whatever its size).
_PAGE = """
SELECT audience, emails, added_at, n, total FROM (
    SELECT audience, emails, added_at,
           sum(length(CAST(emails AS BLOB)) + length(CAST(added_at AS BLOB)))
               OVER (ORDER BY audience ROWS UNBOUNDED PRECEDING) AS running,
           row_number() OVER (ORDER BY audience) AS n,
           count(*) OVER () AS total
    FROM ({expected})
) WHERE running <= ? OR n = 1
ORDER BY audience
"""


class LeaseHeld(VaultError):
    """Another process holds the writer lease of this D1 database."""

    def __init__(self, holder: str, expires_at: str) -> None:
        super().__init__(
            f"another vault-drift serve holds this D1 database (holder {holder},"
            f" lease expires at {expires_at})"
        )
        self.holder, self.expires_at = holder, expires_at


class D1Reader:
    """A ``Reader`` over D1: each ``execute`` is one ``/raw`` request."""

    def __init__(self, client: D1Client) -> None:
        self._client = client

    def execute(self, sql: str, parameters: Any = (), /) -> RowsCursor:
        result = self._client.query(sql, list(parameters))
        return RowsCursor(result.columns, [tuple(row) for row in result.rows])


class PrefetchedReader:
    """Answers from one batch fetched beforehand (several reads, one request)."""

    def __init__(self, answers: dict[str, RowsCursor]) -> None:
        self._answers = answers

    def execute(self, sql: str, parameters: Any = (), /) -> RowsCursor:
        return self._answers[sql]


class NoChangeFeed:
    """D1 has no ``data_version`` over REST: never a change (the watcher does not run)."""

    def changed(self) -> bool:
        return False

    def forget(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Lease:
    holder: str
    ttl: float
    valid_until: float = 0.0  # monotonic: writes stop here unless a renewal moved it


class D1Store(StatementStore):
    """A Vault in Cloudflare D1. ``open()`` checks it and creates our tables."""

    def __init__(
        self,
        client: D1Client,
        *,
        page_bytes: int = PAGE_BYTES,
        batch_statements: int = BATCH_STATEMENTS,
        batch_bytes: int = BATCH_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.page_bytes = page_bytes
        self.batch_statements, self.batch_bytes = batch_statements, batch_bytes
        self._reader = D1Reader(client)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # audience -> bytes of its members, last read
        self._counts: dict[str, int] = {}  # audience -> expected_count of the last check
        self._bytes_per_member = float(GUESS_BYTES_PER_MEMBER)
        self._lease: _Lease | None = None
        self.pages_read = 0  # membership pages fetched (benchmarks)

    def __repr__(self) -> str:
        return f"D1Store(database={self.client.database_id!r})"

    @property
    def path(self) -> str:
        return f"d1://{self.client.database_id}"

    def open(self, seed_interval: int | None = None) -> D1Store:
        """Check the database, migrate the companion tables, seed the interval."""
        try:
            present = {
                row[0]
                for row in self._reader.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except CloudflareError as exc:
            raise VaultError(self._explain(exc)) from None
        missing = [name for name in REQUIRED_TABLES if name not in present]
        if missing:
            raise VaultError(
                f"D1 database {self.client.database_id} is not a Vault: missing tables"
                f" {', '.join(missing)}"
            )
        try:
            migrate(self._reader)
        except CloudflareError as exc:
            raise VaultError(f"D1 database {self.client.database_id}: {exc}") from None
        if seed_interval is not None:
            self._write([operator.seed_interval(seed_interval)])
        return self

    def _explain(self, exc: CloudflareError) -> str:
        name = f"D1 database {self.client.database_id}"
        if isinstance(exc, D1Error) and exc.unknown_database:
            return f"{name} not found in this account (Cloudflare {exc.status}, code {exc.code})"
        if isinstance(exc, D1Error) and exc.not_allowed:
            return (
                f"{name}: the token is not allowed to use it (Cloudflare {exc.status},"
                f" code {exc.code}): VAULT_DRIFT_D1_API_TOKEN needs D1 Edit on this database"
            )
        return f"{name} unreachable: {exc}"

    # -- reads --------------------------------------------------------------------------

    def audiences(self) -> list[Audience]:
        results = self._batch_read(
            [
                (membership.AUDIENCES, ()),
                ("SELECT audience, expected_count FROM sys_infra_drift_state", ()),
            ]
        )
        counts = {name: int(count) for name, count in results[1] if count is not None}
        with self._lock:
            self._counts = counts
        return membership.audiences_from(tuple(row) for row in results[0])

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        names = sorted(dict.fromkeys(audiences))
        if not names:
            return {}
        packed: dict[str, tuple[str, str] | str] = {}
        broken: list[tuple[str, str]] | None = None
        queue = list(names)
        while queue:
            page = self._next_page(queue)
            try:
                got, complete, found = self._read_page(page, with_broken=broken is None)
                broken = broken if found is None else found
            except CloudflareError as exc:
                if broken is None:  # not even the first answer: Vault is unreadable
                    raise VaultError(f"Vault unreadable: {exc}") from exc
                message = f"Vault unreadable: D1 page of members did not arrive: {exc}"
                log.warning("%s (%d audiences left unread)", message, len(queue))
                packed.update({name: message for name in queue})
                break
            covered = page if complete else [n for n in page if n <= max(got)]
            for name in covered:
                packed[name] = got.get(name, ("[]", "[]"))
            queue = queue[len(covered) :]
        self._learn(packed)
        return membership.unpacked_expected({n: packed[n] for n in names}, broken or [])

    def _next_page(self, queue: list[str]) -> list[str]:
        """The longest run of audiences whose estimated answer fits the budget (at least one)."""
        with self._lock:
            sizes, counts, per = dict(self._sizes), dict(self._counts), self._bytes_per_member
        page: list[str] = []
        total = 0
        for name in queue:
            size = sizes.get(name) or int(counts.get(name, GUESS_MEMBERS) * per) + 8
            if page and total + size > self.page_bytes:
                break
            page.append(name)
            total += size
        return page

    def _read_page(
        self, page: list[str], with_broken: bool
    ) -> tuple[dict[str, tuple[str, str]], bool, list[tuple[str, str]] | None]:
        """One page of members (the first one with the malformed applications, in one batch):
        the members found, whether every audience of the page is in, the applications."""
        expected = membership.expected_query("SELECT value FROM json_each(?)")
        statements: list[tuple[str, Sequence[Any]]] = [
            (_PAGE.format(expected=expected), [json.dumps(page), self.page_bytes])
        ]
        if with_broken:
            statements.append((membership.BROKEN_APPLICATIONS, []))
        results = self.client.batch(statements)
        self.pages_read += 1
        rows = results[0].rows
        broken = [(row[0], row[1]) for row in results[1].rows] if with_broken else None
        got = {row[0]: (row[1], row[2]) for row in rows}
        complete = not rows or rows[-1][3] == rows[-1][4]
        return got, complete, broken

    def _learn(self, packed: Mapping[str, tuple[str, str] | str]) -> None:
        sizes = {
            name: len(value[0].encode()) + len(value[1].encode())
            for name, value in packed.items()
            if not isinstance(value, str)
        }
        members = sum(
            value[0].count('","') + 1
            for value in packed.values()
            if not isinstance(value, str) and value[0] != "[]"
        )
        with self._lock:
            self._sizes.update(sizes)
            if members:
                self._bytes_per_member = max(16.0, sum(sizes.values()) / members)

    def memories(self) -> dict[str, DriftMemory]:
        """Both tables in one request."""
        sqls = [state.MEMORY_MEMBERS, state.MEMORY_STATES]
        try:
            results = self.client.batch([(sql, ()) for sql in sqls])
        except CloudflareError as exc:
            raise VaultError(f"Vault unreadable: {exc}") from exc
        answers = {
            sql: RowsCursor(r.columns, [tuple(row) for row in r.rows])
            for sql, r in zip(sqls, results, strict=True)
        }
        return state.load_memories(PrefetchedReader(answers))

    def changes(self) -> NoChangeFeed:
        return NoChangeFeed()

    # -- writes -------------------------------------------------------------------------

    def record_checks(self, record: CheckRecord) -> None:
        """The cycle in as few batches as D1's limits allow; the cycle's record goes last."""
        batch: list[Statement] = []
        size = 0
        for unit in check_units(record):
            unit_size = sum(_size(s) for s in unit)
            full = (
                len(batch) + len(unit) > self.batch_statements
                or size + unit_size > self.batch_bytes
            )
            if batch and full:
                self._write(batch)
                batch, size = [], 0
            batch += unit
            size += unit_size
        if batch:
            self._write(batch)

    def start_audit(self, entry: AuditEntry, now: datetime) -> int:
        outcome = self._write([operator.start_audit(entry, now)])[0]
        if not outcome.last_row_id:
            raise VaultError("Vault write failed: D1 gave no id for the audit row")
        return outcome.last_row_id

    # -- the writer lease (only ``serve`` takes it) --------------------------------------

    def acquire_lease(self, holder: str, now: datetime, ttl: float) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming the holder while it has not expired."""
        started = self._monotonic()
        expires, at = format_time(now + timedelta(seconds=ttl)), format_time(now)
        try:
            results = self.client.batch(
                [
                    (
                        "INSERT OR IGNORE INTO sys_infra_drift_lease (name, holder, acquired_at,"
                        " expires_at) VALUES (?, ?, ?, ?)",
                        [LEASE_NAME, holder, at, expires],
                    ),
                    (
                        "UPDATE sys_infra_drift_lease SET holder = ?, acquired_at = ?,"
                        " expires_at = ? WHERE name = ? AND (holder = ? OR expires_at < ?)",
                        [holder, at, expires, LEASE_NAME, holder, at],
                    ),
                    (
                        "SELECT holder, expires_at FROM sys_infra_drift_lease WHERE name = ?",
                        [LEASE_NAME],
                    ),
                ]
            )
        except CloudflareError as exc:
            raise VaultError(f"cannot take the writer lease: {exc}") from exc
        row = results[2].rows[0] if results[2].rows else None
        if row is None or row[0] != holder:
            raise LeaseHeld(*(row or ("unknown", "unknown")))
        with self._lock:
            self._lease = _Lease(holder, ttl, started + ttl * 2 / 3)

    def renew_lease(self, now: datetime) -> bool:
        """Compare-and-set renewal; False when another process took the lease."""
        lease = self._lease
        if lease is None:
            return False
        started = self._monotonic()
        expires = format_time(now + timedelta(seconds=lease.ttl))
        result = self.client.batch(
            [
                (
                    "UPDATE sys_infra_drift_lease SET expires_at = ? WHERE name = ? AND holder = ?",
                    [expires, LEASE_NAME, lease.holder],
                )
            ]
        )[0]
        if result.changes != 1:
            with self._lock:
                lease.valid_until = 0.0
            return False
        with self._lock:
            # Writes stop a third of the lease before it could run out, counted from before
            # the renewal was sent: a stalled renewal never lets a write pass the expiry.
            lease.valid_until = started + lease.ttl * 2 / 3
        return True

    def lease_holder(self) -> tuple[str, str] | None:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT holder, expires_at FROM sys_infra_drift_lease WHERE name = ?", (LEASE_NAME,)
            ).fetchall()
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self.client.batch(
                [
                    (
                        "DELETE FROM sys_infra_drift_lease WHERE name = ? AND holder = ?",
                        [LEASE_NAME, lease.holder],
                    )
                ]
            )
        except CloudflareError as exc:
            log.warning("could not release the writer lease (it expires by itself): %s", exc)

    # -- plumbing -----------------------------------------------------------------------

    def _read(self, read: Callable[[Reader], Any]) -> Any:
        try:
            return read(self._reader)
        except CloudflareError as exc:
            raise VaultError(f"Vault unreadable: {exc}") from exc

    def _batch_read(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        try:
            return [result.rows for result in self.client.batch(statements)]
        except CloudflareError as exc:
            raise VaultError(f"Vault unreadable: {exc}") from exc

    def _write(self, statements: Sequence[Statement]) -> list[Outcome]:
        """One atomic batch. Refused once the writer lease (when held) could have run out."""
        lease = self._lease
        if lease is not None and self._monotonic() >= lease.valid_until:
            raise VaultError(
                "Vault write refused: the writer lease could not be renewed in time"
                " (another process may own the database now)"
            )
        try:
            results = self.client.batch([(s.sql, s.params) for s in statements])
        except CloudflareError as exc:
            raise VaultError(f"Vault write failed: {exc}") from exc
        return [Outcome(r.changes, r.last_row_id) for r in results]


def _size(statement: Statement) -> int:
    return len(statement.sql) + sum(len(str(p)) + 3 for p in statement.params) + 24


class LeaseKeeper:
    """Holds the writer lease of a D1 Vault for ``serve``: takes it (``LeaseHeld`` names the
    holder otherwise), renews it every third of its length, gives it back on exit.

    A renewal that fails (D1 unreachable) is retried at the next tick; meanwhile the store
    refuses writes once two thirds of the lease have passed since the last renewal was
    sent, so that they stop before it could run out. A renewal that finds another holder
    (the lease had expired and was taken over) stops the writes for good and calls
    ``on_lost`` (``serve`` shuts down).
    """

    def __init__(
        self,
        store: D1Store,
        holder: str,
        ttl: float,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from exporter.clock import utc_now  # the clock module reads the wall clock

        self.store, self.holder, self.ttl = store, holder, float(ttl)
        self.clock = clock or utc_now
        self.on_lost: Callable[[], None] = lambda: None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="d1-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self.store.acquire_lease(self.holder, self.clock(), self.ttl)
        log.info("took the writer lease", extra={"holder": self.holder, "ttl": self.ttl})
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.lost is None:
            self.store.release_lease()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if self.store.renew_lease(self.clock()):
                    continue
            except CloudflareError as exc:
                log.warning("could not renew the writer lease (writes stop soon): %s", exc)
                continue
            held = None
            with contextlib.suppress(VaultError):
                held = self.store.lease_holder()
            holder = f"{held[0]} until {held[1]}" if held else "nobody"
            self.lost = f"the writer lease of the D1 database was taken over ({holder})"
            log.error("%s: writes stopped", self.lost)
            self.on_lost()
            return
