"""Change-driven checks: notice Vault membership changes and re-check only those audiences.

The store's change feed (on SQLite, ``PRAGMA data_version`` on one long-lived connection) is
polled every second. When it moves, the expected sets are compared with the last ones,
and the audiences whose members changed are checked after a short debounce (so vault-api's
own push to Cloudflare lands first).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from exporter.core.packed import pack
from exporter.service.cycle import CycleService
from exporter.service.work_lock import Busy
from exporter.vault.store import VaultError, VaultStore

log = logging.getLogger("vault_drift.watcher")

Fingerprint = dict[str, bytes | str]
"""Per audience, a digest of its member emails (or the error reading them)."""


class MembershipWatcher:
    """Polls the change feed; reads and compares the memberships only when it moves.

    A read costs one membership query (about 2 s at a million memberships), so after each
    read the watcher stays quiet long enough for reads to take at most ``read_share`` of
    one core, however often vault-api commits. A change is forgotten only once its check
    has run: one that meets a running check or sync (``Busy``) is checked on a later tick.
    """

    def __init__(
        self,
        vault: VaultStore,
        cycle: CycleService,
        poll_seconds: float = 1.0,
        debounce_seconds: float = 2.0,
        *,
        check_timeout: float = 60.0,
        read_share: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < read_share <= 1:
            raise ValueError("read_share must be in (0, 1]")
        # Each change-driven check goes through the cycle: auto-sync and the rest follow (a
        # leaver removed from Vault is revoked by remove_only within that one check).
        self.vault, self.cycle = vault, cycle
        self.poll_seconds = poll_seconds
        self.debounce_seconds = debounce_seconds
        self.check_timeout = check_timeout
        self.read_share = read_share
        self.reads = 0
        self._clock = clock
        self._quiet_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-drift-watcher", daemon=True)
        self._last: Fingerprint | None = None
        self._layout: list[tuple[str, str | None]] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        feed = self.vault.changes()
        try:
            while not self._stop.wait(self.poll_seconds):
                if self._clock() < self._quiet_until:
                    continue
                try:
                    if feed.changed():
                        self._on_change()
                except VaultError as exc:
                    log.warning("%s", exc)
                except Busy:
                    log.info("change check deferred: a check or sync is running")
                    feed.forget()  # the change is still pending: read again on the next tick
                except Exception:
                    log.exception("change-driven check failed")
        finally:
            feed.close()

    def _on_change(self) -> None:
        layout, fingerprint = self._timed_read()
        previous, previous_layout = self._last, self._layout
        if previous is not None and layout != previous_layout:
            log.info("sys_infra_state changed: full check")
            self._settle()
            self._check(None)
        elif previous is not None:
            changed = sorted(
                name for name in fingerprint if fingerprint[name] != previous.get(name)
            )
            if changed:
                log.info("Vault membership changed for %d audiences", len(changed))
                self._settle()
                self._check(changed)
        self._last, self._layout = fingerprint, layout  # only once its check has run

    def _check(self, audiences: list[str] | None) -> None:
        if audiences is None:
            self.cycle.check_all("change", timeout=self.check_timeout)
        else:
            self.cycle.check_audiences(audiences, "change", timeout=self.check_timeout)

    def _timed_read(self) -> tuple[list[tuple[str, str | None]], Fingerprint]:
        started = self._clock()
        result = self.read_memberships()
        self.reads += 1
        finished = self._clock()
        self._quiet_until = finished + (finished - started) * (1 / self.read_share - 1)
        return result

    def read_memberships(self) -> tuple[list[tuple[str, str | None]], Fingerprint]:
        vault = self.vault
        audiences = vault.audiences()
        layout = [(a.audience, a.group_id) for a in audiences]
        expected = vault.expected_members([a.audience for a in audiences])
        fingerprint: Fingerprint = {}
        for name, exp in expected.items():  # one audience unpacked at a time
            fingerprint[name] = exp.error if exp.error else _digest(exp.members)
        return layout, fingerprint

    def _settle(self) -> None:
        """Debounce: let a burst of writes (and vault-api's own push) finish first."""
        time.sleep(self.debounce_seconds)


def _digest(emails: Iterable[str]) -> bytes:
    """16 bytes standing for a member set: the watcher keeps one per audience, not the set."""
    return hashlib.blake2b(pack(sorted(emails)).encode(), digest_size=16).digest()
