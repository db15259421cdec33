"""The Vault store on Cloudflare D1, over its REST API: the same SQL as on SQLite
(docs/design.md, "The Vault on D1").

Reads go through ``/raw``, one request per read (a few reads share one batch); a check's
reads all go in one batch (``check_reads.py``). Writes are the
statements of ``state``/``decisions``/``reporting`` sent as one ``batch`` each, which D1
applies atomically; a check cycle too big for one request goes as several batches, each a
consistent unit (an audience's status with its companion rows), the cycle's own record last.
Each batch ends with its idempotency key (``ledger.py``): a failed write asks whether it
landed, and is sent once more only when it did not; it is never applied twice.

Expected members are read in pages of audiences (``d1_pages.py``); the writer lease's
statements are in ``lease.py`` and the thread that keeps it in ``exporter/runtime``.

D1 has no change signal over REST: ``changes()`` never reports one (the watcher does not run
on D1; vault-api's notification and the periodic check are the whole story).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from exporter.clock import Clock, utc_now
from exporter.cloudflare.d1 import D1Client, D1Error
from exporter.cloudflare.wire import CloudflareError, RateLimited
from exporter.core.attribution import Coverage, GroupChange
from exporter.core.model import Audience, DriftMemory, Expected
from exporter.vault import attribution, decisions, lease, ledger, membership, state
from exporter.vault.check_reads import COUNTS, BatchedReads, batched
from exporter.vault.d1_pages import PAGE_BYTES, MemberPager
from exporter.vault.db import REQUIRED_TABLES, migrate
from exporter.vault.lease import Lease, LeaseHeld
from exporter.vault.sql import Outcome, Reader, RowsCursor, Statement
from exporter.vault.statement_store import StatementStore, check_units
from exporter.vault.store import (
    AuditEntry,
    CheckReads,
    CheckRecord,
    VaultError,
)

log = logging.getLogger("vault_drift.d1")

BATCH_STATEMENTS = 2_000  # per write request, whole units only
BATCH_BYTES = 2_000_000  # of SQL and parameters per write request
WRITE_SENDS = 2  # a batch goes again only once the ledger says the first one did not land


class D1Reader:
    """A ``Reader`` over D1: each ``execute`` is one ``/raw`` request."""

    def __init__(self, client: D1Client) -> None:
        self._client = client

    def execute(self, sql: str, parameters: Any = (), /) -> RowsCursor:
        result = self._client.query(sql, list(parameters))
        return RowsCursor(result.columns, [tuple(row) for row in result.rows])


class NoChangeFeed:
    """D1 has no ``data_version`` over REST: never a change (the watcher does not run)."""

    def changed(self) -> bool:
        return False

    def forget(self) -> None:
        pass

    def close(self) -> None:
        pass


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
        clock: Clock = utc_now,
    ) -> None:
        self.client = client
        self.batch_statements, self.batch_bytes = batch_statements, batch_bytes
        self._reader = D1Reader(client)
        self._monotonic, self._clock = monotonic, clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}  # audience -> expected_count of the last check
        self._lease: Lease | None = None
        self.pager = MemberPager(client, page_bytes)

    def __repr__(self) -> str:
        return f"D1Store(database={self.client.database_id!r})"

    @property
    def path(self) -> str:
        return f"d1://{self.client.database_id}"

    def open(self, seed_interval: int | None = None) -> D1Store:
        """Check the database, migrate the companion tables, seed the interval."""
        self.require_vault()
        try:
            migrate(self._reader)
        except CloudflareError as exc:
            raise VaultError(f"D1 database {self.client.database_id}: {exc}") from None
        if seed_interval is not None:
            self._write([decisions.seed_interval(seed_interval)])
        return self

    def require_vault(self) -> None:
        """VaultError unless the database is reachable and a Vault (changes nothing)."""
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
                (COUNTS, ()),
            ]
        )
        self.remember_counts({name: int(count) for name, count in results[1] if count is not None})
        return membership.audiences_from(tuple(row) for row in results[0])

    def check_reads(self, audiences: Collection[str] | None, ended_since: datetime) -> CheckReads:
        """A check's reads in one request (each D1 request counts against Cloudflare's API
        budget); VaultError when it fails."""
        return BatchedReads(self, audiences, ended_since)

    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]:
        return self.pager.expected_members(audiences, self.counts())

    def counts(self) -> dict[str, int]:
        """Each audience's expected count at its last check (the pager's first guess)."""
        with self._lock:
            return dict(self._counts)

    def remember_counts(self, counts: dict[str, int]) -> None:
        with self._lock:
            self._counts = counts

    @property
    def pages_read(self) -> int:
        """Membership pages fetched (benchmarks)."""
        return self.pager.pages_read

    def memories(self) -> dict[str, DriftMemory]:
        """Both tables in one request."""
        found, _ = batched(self.client, [state.load_memories])
        memories: dict[str, DriftMemory] = found[0]
        return memories

    def attribution_cache(
        self, group_ids: Collection[str], since: datetime
    ) -> tuple[dict[str, Coverage], list[GroupChange]]:
        """Both tables in one request."""
        found, _ = batched(self.client, [lambda conn: attribution.cached(conn, group_ids, since)])
        cache: tuple[dict[str, Coverage], list[GroupChange]] = found[0]
        return cache

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
            self._write([*batch, ledger.prune(record.at)])

    def start_audit(self, entry: AuditEntry, now: datetime) -> int:
        outcome = self._write([decisions.start_audit(entry, now)])[0]
        if not outcome.last_row_id:
            raise VaultError("Vault write failed: D1 gave no id for the audit row")
        return outcome.last_row_id

    # -- the writer lease (only ``serve`` takes it) --------------------------------------

    def acquire_lease(self, holder: str, now: datetime, ttl: float) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming the holder while it has not expired."""
        started = self._monotonic()
        try:
            results = self.client.batch(lease.take(holder, now, ttl))
        except CloudflareError as exc:
            raise VaultError(f"cannot take the writer lease: {exc}") from exc
        row = results[-1].rows[0] if results[-1].rows else None
        if row is None or row[0] != holder:
            raise LeaseHeld(*(row or ("unknown", "unknown")))
        with self._lock:
            self._lease = Lease(holder, ttl, started + ttl * 2 / 3)

    def renew_lease(self, now: datetime) -> bool:
        """Compare-and-set renewal; False when another process took the lease."""
        held = self._lease
        if held is None:
            return False
        started = self._monotonic()
        result = self.client.batch([lease.renew(held, now)])[0]
        with self._lock:
            # Writes stop a third of the lease before it could run out, counted from before
            # the renewal was sent: a stalled renewal never lets a write pass the expiry.
            held.valid_until = started + held.ttl * 2 / 3 if result.changes == 1 else 0.0
        return result.changes == 1

    def lease_holder(self) -> tuple[str, str] | None:
        rows = self._read(lambda conn: conn.execute(*lease.HOLDER).fetchall())
        return (rows[0][0], rows[0][1]) if rows else None

    def release_lease(self) -> None:
        held, self._lease = self._lease, None
        if held is None:
            return
        try:
            self.client.batch([lease.release(held)])
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
        """One atomic batch, its key last. Refused once the writer lease (when held) could
        have run out. A failure asks the ledger whether the batch landed all the same (an
        answer lost after the commit); one that did not land and may work again goes once
        more (the key keeps a late first copy from landing too)."""
        key = ledger.new_key(self._clock())
        batch = [(s.sql, s.params) for s in (*statements, ledger.mark(key))]
        for send in range(1, WRITE_SENDS + 1):
            self._check_lease()
            try:
                results = self.client.batch(batch)
            except RateLimited as exc:  # answered before anything ran
                raise VaultError(f"Vault write failed: {exc}") from exc
            except CloudflareError as exc:
                landed = ledger.after_failure(self._reader, key, len(statements), exc)
                if landed is not None:
                    log.info("a D1 write landed though its answer was lost: %s", exc)
                    return landed
                if send == WRITE_SENDS or not ledger.may_work_again(exc):
                    raise VaultError(f"Vault write failed: {exc}") from exc
                log.info("a D1 write did not land, sending it again: %s", exc)
                continue
            return [Outcome(r.changes, r.last_row_id) for r in results[:-1]]
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_lease(self) -> None:
        lease = self._lease
        if lease is not None and self._monotonic() >= lease.valid_until:
            raise VaultError(
                "Vault write refused: the writer lease could not be renewed in time"
                " (another process may own the database now)"
            )


def _size(statement: Statement) -> int:
    return len(statement.sql) + sum(len(str(p)) + 3 for p in statement.params) + 24
