"""The cycle: a check, then auto-sync, then what follows a check, whatever started it.

Every trigger of ``serve`` (the scheduler, the error retry, the watcher, vault-api's
notification, the API, the page) goes through one ``CycleService``. So an audience that heals
on the retry path is auto-synced like one a scheduled check found drifting, and the
followers (what follows a check or a sync: session revocation, webhooks...) run after each
one. The work lock is taken here and nowhere else, once per call: checks and syncs never
interleave (docs/design.md, "The cycle").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

from exporter.clock import Clock, utc_now
from exporter.core.model import Status, SyncOutcome, SyncResultKind
from exporter.core.snapshot import Snapshot
from exporter.service.checker import Checker
from exporter.service.recovery import Recovery
from exporter.service.syncer import Syncer, SyncRequest
from exporter.service.work_lock import Busy, WorkLock
from exporter.vault.store import VaultError

log = logging.getLogger("vault_drift.cycle")

RETRY_LADDER = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
FULL_RETRY_ABOVE = 10  # more audiences in error than this: one listing beats N GETs


def retry_delay(consecutive_errors: int) -> timedelta:
    """How long an audience in error waits before its next retry: 5 m, 15 m, then hourly."""
    index = min(max(consecutive_errors, 1), len(RETRY_LADDER)) - 1
    return RETRY_LADDER[index]


@dataclass(frozen=True)
class CycleDone:
    """What one run of the cycle did, for its followers."""

    snapshot: Snapshot  # the state after the check and its syncs
    trigger: str
    scope: str  # full | partial | sync
    audiences: tuple[str, ...] | None  # None: every audience
    synced: tuple[SyncOutcome, ...] = ()
    # What followers report back, by audience: the emails whose sessions were revoked (a
    # sync's result carries them as ``revoked``).
    revoked: dict[str, list[str]] = field(default_factory=dict)


class Follower(Protocol):
    """What follows a check or a sync, inside the cycle's lock (it may write)."""

    def after_cycle(self, done: CycleDone) -> None: ...


class CycleService:
    def __init__(
        self,
        checker: Checker,
        syncer: Syncer,
        recovery: Recovery,
        lock: WorkLock,
        *,
        clock: Clock = utc_now,
        followers: list[Follower] | None = None,
    ) -> None:
        self.checker, self.syncer, self.recovery = checker, syncer, recovery
        self.lock, self.clock = lock, clock
        self.followers: list[Follower] = followers if followers is not None else []
        # Run after a full check, outside the lock (mail: slow, and it only reads).
        self.after_full_check: list[Callable[[Snapshot], None]] = []

    # -- checks -------------------------------------------------------------------------

    def check_all(self, trigger: str, timeout: float | None = None) -> Snapshot:
        """A full check (one paginated listing), then auto-sync, then the followers."""
        with self.lock.hold(timeout):
            snapshot = self.checker.check_all(trigger)
            snapshot = self._follow(snapshot, trigger, "full", None)
        for hook in self.after_full_check:
            try:
                hook(snapshot)
            except Exception:
                log.exception("after-check hook failed")
        return snapshot

    def check_audiences(
        self, names: list[str], trigger: str, timeout: float | None = None
    ) -> Snapshot:
        """A partial check (one direct GET per group), then auto-sync, then the followers."""
        with self.lock.hold(timeout):
            snapshot = self.checker.check_audiences(names, trigger)
            return self._follow(snapshot, trigger, "partial", tuple(names))

    def retry_errors(self, timeout: float | None = None) -> Snapshot | None:
        """The audiences in error whose retry is due, checked again the whole way."""
        now = self.clock()
        due = [
            name
            for name, check in self.checker.snapshots.current.checks.items()
            if check.status is Status.ERROR
            and now - check.checked_at >= retry_delay(check.memory.consecutive_errors)
        ]
        if not due:
            return None
        log.info("retrying %d audiences in error", len(due))
        if len(due) > FULL_RETRY_ABOVE:
            return self.check_all("retry", timeout)
        return self.check_audiences(due, "retry", timeout)

    def _follow(
        self, snapshot: Snapshot, trigger: str, scope: str, names: tuple[str, ...] | None
    ) -> Snapshot:
        """Auto-sync what the check read, then the followers; the caller holds the lock."""
        outcomes = self.syncer.auto_sync(
            snapshot.settings.auto_sync, None if names is None else list(names)
        )
        done = CycleDone(self.checker.snapshots.current, trigger, scope, names, tuple(outcomes))
        self._run_followers(done)
        return self.checker.snapshots.current

    # -- syncs --------------------------------------------------------------------------

    def sync(self, request: SyncRequest, timeout: float | None = None) -> list[SyncOutcome]:
        with self.lock.hold(timeout):
            outcomes = self.syncer.sync(request)
            return self._after_sync(request, outcomes)

    def check_then_sync(
        self, request: SyncRequest, trigger: str, timeout: float | None = None
    ) -> tuple[list[SyncOutcome], str | None]:
        """``--all`` / ``{"all": true}``: a full check first, then every audience that needs
        action gets a result: those in drift are synced, those the check left in ``error``
        are an ``error`` result with the check's reason (never left out).

        When the check itself could not complete, nobody can be known to drift: nothing is
        synced. A Vault that could not be read raises ``VaultError`` (the API's 503); a
        Cloudflare listing that failed is the second value, saying why.
        """
        with self.lock.hold(timeout):
            snapshot = self.checker.check_all(trigger)
            unchecked = _unchecked(snapshot)
            if snapshot.vault_up is False:
                raise VaultError(snapshot.cycle_error or "the Vault could not be read")
            if snapshot.cycle_error:
                return unchecked, snapshot.cycle_error
            outcomes = self.syncer.sync(replace(request, audiences=None))
            outcomes = self._after_sync(request, outcomes)
        return sorted([*outcomes, *unchecked], key=lambda o: o.audience), None

    def resume_auto_sync(self, timeout: float | None = None) -> list[SyncOutcome]:
        """Once a long 429 pause is over, auto-sync the audiences it cut short."""
        if not self.syncer.auto_sync_due():
            return []
        with self.lock.hold(timeout):
            outcomes = self.syncer.resume_auto_sync()
            request = SyncRequest(None, trigger="auto", actor="auto-sync")
            return self._after_sync(request, outcomes)

    def create_group(self, name: str, actor: str, trigger: str = "api") -> str:
        with self.lock.hold(None):
            return self.syncer.create_group(name, actor, trigger)

    def settle_interrupted(self, up_to_id: int | None = None, timeout: float = 60) -> int:
        """Syncs a previous process left ``in_progress``: read the group back, record it."""
        with self.lock.hold(timeout):
            return self.recovery.settle_interrupted(up_to_id)

    @contextmanager
    def quiesced(self, timeout: float = 60) -> Iterator[None]:
        """Wait for the running check or sync to finish (at shutdown)."""
        with self.lock.hold(timeout):
            yield

    def _after_sync(self, request: SyncRequest, outcomes: list[SyncOutcome]) -> list[SyncOutcome]:
        """The followers, then each outcome with the sessions they revoked."""
        if request.dry_run or not outcomes:
            return outcomes
        names = tuple(o.audience for o in outcomes)
        done = CycleDone(
            self.checker.snapshots.current, request.trigger, "sync", names, tuple(outcomes)
        )
        self._run_followers(done)
        return [
            replace(o, revoked=tuple(done.revoked[o.audience])) if o.audience in done.revoked else o
            for o in outcomes
        ]

    def _run_followers(self, done: CycleDone) -> None:
        for follower in self.followers:
            try:
                follower.after_cycle(done)
            except Busy:
                raise
            except VaultError as exc:  # the Vault is down or paused: said once per cycle, the
                # cycle's own error says the rest; a traceback each cycle would bury the log
                log.warning("%s skipped after a cycle: %s", type(follower).__name__, exc)
            except Exception:
                log.exception("%s failed after a cycle", type(follower).__name__)


def _unchecked(snapshot: Snapshot) -> list[SyncOutcome]:
    """The audiences a check left in ``error``: a result each, with the check's reason."""
    return [
        SyncOutcome(
            check.audience.audience,
            SyncResultKind.ERROR,
            reason=f"not checked: {check.error_message}",
        )
        for check in snapshot.checks.values()
        if check.status is Status.ERROR
    ]
