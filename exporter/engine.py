"""The check cycle: read Vault and Cloudflare, evaluate, persist, publish a snapshot.

One lock serialises every check and sync, so a check and a sync of the same audience never
interleave; callers that cannot wait long get ``Busy`` (the API answers 409).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from .clock import Clock, utc_now
from .cloudflare import CloudflareClient, CloudflareError
from .drift import compact, evaluate
from .model import Actual, Audience, AudienceCheck, DriftMemory, Expected, Ignore, Settings, Status
from .packed import Unpacked, packed_actual
from .snapshot import Snapshot
from .vault import VaultDB
from .vault.membership import expected_members, list_audiences
from .vault.operator import load_ignores, load_settings
from .vault.state import (
    CycleSummary,
    forget_removed,
    load_memories,
    prune_history,
    record_checks,
    record_cycle,
)

log = logging.getLogger("vault_drift.engine")


class Busy(Exception):
    """Another check or sync is running and did not finish in time."""


class UnknownAudience(LookupError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown audience: {', '.join(names)}")
        self.names = names


@dataclass(frozen=True)
class Cycle:
    """What the history row of a check cycle needs beyond the checks themselves."""

    started: datetime
    trigger: str
    scope: str  # full | partial
    cloudflare_ok: bool


class Events(Protocol):
    """What the engine reports to the exporter's own metrics."""

    def checked(self, scope: str, success: bool, seconds: float) -> None: ...
    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None: ...


class NoEvents:
    def checked(self, scope: str, success: bool, seconds: float) -> None:
        pass

    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None:
        pass


class Engine:
    def __init__(
        self,
        db: VaultDB,
        cloudflare: CloudflareClient,
        *,
        clock: Clock = utc_now,
        events: Events | None = None,
        seed_interval: int | None = None,
        lock_timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.cloudflare = cloudflare
        self.clock = clock
        self.events: Events = events or NoEvents()
        self.lock_timeout = lock_timeout
        self.after_full_check: list[Callable[[Snapshot], None]] = []
        self._lock = threading.RLock()
        with db.connect() as conn:
            settings = load_settings(conn, seed_interval)
            ignores = load_ignores(conn)
        self._snapshot = Snapshot(settings=settings, ignores=ignores)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, **changes: object) -> Snapshot:
        self._snapshot = replace(self._snapshot, **changes)  # type: ignore[arg-type]
        return self._snapshot

    @contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.lock_timeout if timeout is None else timeout):
            raise Busy("another check or sync is running; try again shortly")
        try:
            yield
        finally:
            self._lock.release()

    # -- checks ---------------------------------------------------------------------------

    def check_all(self, trigger: str = "schedule", timeout: float | None = None) -> Snapshot:
        """A full cycle: every audience, Cloudflare read by one paginated listing."""
        with self.exclusive(timeout):
            snapshot = self._check_all(trigger)
        for hook in self.after_full_check:
            try:
                hook(snapshot)
            except Exception:
                log.exception("after-check hook failed")
        return snapshot

    def check_audiences(
        self, names: list[str], trigger: str = "api", timeout: float | None = None
    ) -> Snapshot:
        """A partial cycle: only these audiences, one direct GET per group."""
        with self.exclusive(timeout):
            return self._check_some(names, trigger)

    def _check_all(self, trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        try:
            with self.db.connect() as conn:
                audiences = list_audiences(conn)
                settings = load_settings(conn)
                # Cloudflare's listing (network, JSON) runs beside Vault's query (SQLite
                # releases the GIL): the cycle costs the longer of the two, not their sum.
                with ThreadPoolExecutor(1, thread_name_prefix="cf-listing") as pool:
                    listing = pool.submit(self._list_actual, audiences)
                    try:
                        expected = expected_members(conn, [a.audience for a in audiences])
                    finally:
                        actual, listing_error = listing.result()
        except sqlite3.Error as exc:
            return self._vault_down(t0, f"Vault unreadable: {exc}")
        cloudflare_ok = listing_error is None
        cycle = Cycle(started, trigger, "full", cloudflare_ok)
        checks = self.evaluate_and_record(audiences, expected, actual, full=True, cycle=cycle)
        finished = self.clock()
        self.events.checked("full", cloudflare_ok, time.monotonic() - t0)
        return self.publish(
            checks={c.audience.audience: c for c in checks},
            settings=settings,
            ignores=self._ignores(),
            last_check_at=finished,
            last_success_at=finished if cloudflare_ok else self._snapshot.last_success_at,
            vault_up=True,
            cloudflare_up=cloudflare_ok,
            cycle_error=None if cloudflare_ok else f"Cloudflare listing failed: {listing_error}",
        )

    def _check_some(self, names: list[str], trigger: str) -> Snapshot:
        started, t0 = self.clock(), time.monotonic()
        with self.db.connect() as conn:
            audiences = [a for a in list_audiences(conn) if a.audience in set(names)]
            unknown = sorted(set(names) - {a.audience for a in audiences})
            if unknown:
                raise UnknownAudience(unknown)
            expected = expected_members(conn, [a.audience for a in audiences])
        actual = {a.audience: self._get_actual(a) for a in audiences if a.group_id is not None}
        ok = not any(a.error for a in actual.values())
        cycle = Cycle(started, trigger, "partial", ok)
        checks = self.evaluate_and_record(audiences, expected, actual, full=False, cycle=cycle)
        self.events.checked("partial", ok, time.monotonic() - t0)
        merged = dict(self._snapshot.checks)
        merged.update({c.audience.audience: c for c in checks})
        return self.publish(
            checks=dict(sorted(merged.items())), ignores=self._ignores(), last_check_at=self.clock()
        )

    def _list_actual(self, audiences: list[Audience]) -> tuple[Mapping[str, Actual], str | None]:
        """Every group by one paginated listing, each kept packed until it is evaluated.

        The second value is why the listing failed (None when it completed).
        """
        wanted = {a.group_id: a.audience for a in audiences if a.group_id is not None}
        if not wanted:
            return {}, None
        found: dict[str, Callable[[], Actual]] = {}
        try:
            for group in self.cloudflare.iter_groups():
                if group.id in wanted:
                    found[wanted[group.id]] = packed_actual(compact(group))
        except CloudflareError as exc:
            log.warning("cloudflare listing failed: %s", exc)
            return {name: Actual(error=str(exc)) for name in wanted.values()}, str(exc)
        for audience in audiences:  # absent from the listing: ask for it directly, once
            if audience.group_id is not None and audience.audience not in found:
                found[audience.audience] = packed_actual(self._get_actual(audience))
        return Unpacked(found), None

    def _get_actual(self, audience: Audience) -> Actual:
        assert audience.group_id is not None
        try:
            return compact(self.cloudflare.get_group(audience.group_id))
        except CloudflareError as exc:
            if exc.status == 404:
                return Actual()
            return Actual(error=str(exc))

    def evaluate_and_record(
        self,
        audiences: list[Audience],
        expected: Mapping[str, Expected],
        actual: Mapping[str, Actual],
        full: bool,
        closed_by_sync: str | None = None,
        cycle: Cycle | None = None,
    ) -> list[AudienceCheck]:
        """Evaluate and persist, with the cycle's history row, in one transaction.

        Each audience's two sides are read once, evaluated and dropped: with packed sides
        (a full check) only one audience's members are ever unpacked at a time.
        """
        at = self.clock()
        with self.db.transaction() as conn:
            memories = load_memories(conn)
            checks = [
                evaluate(
                    a,
                    expected.get(a.audience, Expected()),
                    actual.get(a.audience, Actual()),
                    memories.get(a.audience, DriftMemory()),
                    at,
                )
                for a in audiences
            ]
            record_checks(conn, checks, memories, at, closed_by_sync)
            if full:
                forget_removed(conn, [a.audience for a in audiences], at)
            if cycle is not None:
                self._record_cycle(conn, cycle, checks)
        return checks

    def _record_cycle(
        self, conn: sqlite3.Connection, cycle: Cycle, checks: list[AudienceCheck]
    ) -> None:
        counts: dict[str, int] = {str(s): 0 for s in Status}
        for check in checks:
            counts[str(check.status)] += 1
        summary = CycleSummary(
            cycle.started,
            self.clock(),
            cycle.trigger,
            cycle.scope,
            True,
            cycle.cloudflare_ok,
            counts,
        )
        record_cycle(conn, summary)
        if cycle.scope == "full":
            retention = timedelta(days=self._snapshot.settings.history_retention_days)
            prune_history(conn, self.clock() - retention)

    def _vault_down(self, t0: float, message: str) -> Snapshot:
        """Vault unreadable: every known audience is in error; nothing is guessed."""
        log.error("%s", message)
        now = self.clock()
        checks = {
            name: replace(
                check,
                status=Status.ERROR,
                error_message=message,
                checked_at=now,
                missing=(),
                extra=(),
            )
            for name, check in self._snapshot.checks.items()
        }
        self.events.checked("full", False, time.monotonic() - t0)
        return self.publish(checks=checks, last_check_at=now, vault_up=False, cycle_error=message)

    def _ignores(self) -> dict[str, Ignore]:
        with self.db.connect() as conn:
            return load_ignores(conn)

    def reload_settings(self) -> Settings:
        with self.db.connect() as conn:
            settings = load_settings(conn)
            ignores = load_ignores(conn)
        self.publish(settings=settings, ignores=ignores)
        return settings
