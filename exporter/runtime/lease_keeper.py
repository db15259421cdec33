"""One writer per Vault for ``serve`` (docs/design.md, "One writer"): the writer lease of a D1
Vault and the lock file beside a Vault file, both behind one small interface, ``Claim``.

``take()`` makes this process the writer or raises ``Held`` naming the one that is;
``serve --standby`` calls it again every ``POLL_SECONDS`` until it succeeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from exporter.clock import utc_now
from exporter.cloudflare.wire import CloudflareError
from exporter.vault.d1 import D1Store
from exporter.vault.lease import LeaseHeld
from exporter.vault.store import VaultError

log = logging.getLogger("vault_drift.lease")

POLL_SECONDS = 5.0  # a standby reads the lease (or tries the lock) this often


class LockHeld(VaultError):
    """Another ``serve`` holds the lock file of this Vault file."""

    def __init__(self, database: Path, lock_path: Path, holder: str) -> None:
        super().__init__(
            f"another vault-drift serve is already running on {database} (lock {lock_path})"
        )
        self.holder, self.lock_path = holder, lock_path


Held = LeaseHeld | LockHeld


def standby_reason(held: Held) -> str:
    """What a standby's /readyz says: who is the writer, and until when at the latest."""
    if isinstance(held, LeaseHeld):
        return f"standby: lease held by {held.holder} until {held.expires_at}"
    return f"standby: lease held by {held.holder} until it stops (lock {held.lock_path})"


class Claim(Protocol):
    """The right to write one Vault: taken once, kept, given back on exit."""

    on_lost: Callable[[], None]
    lost: str | None

    def take(self) -> None: ...

    def release(self) -> None: ...


class LeaseKeeper:
    """Holds the writer lease of a D1 Vault for ``serve``: takes it (``LeaseHeld`` names the
    holder otherwise), renews it every third of its length, gives it back on ``release``.

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
        self.store, self.holder, self.ttl = store, holder, float(ttl)
        self.clock = clock or utc_now
        self.on_lost: Callable[[], None] = lambda: None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="d1-lease", daemon=True)

    def take(self) -> None:
        self.store.acquire_lease(self.holder, self.clock(), self.ttl)
        log.info("took the writer lease", extra={"holder": self.holder, "ttl": self.ttl})
        self._thread.start()

    def release(self) -> None:
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


class FileLock:
    """The lock file beside a Vault file (``<database>.vault-drift.lock``): an exclusive
    ``flock`` held for the life of ``serve``, the holder's name written in it for a standby's
    /readyz. The kernel drops it when the process dies, however it dies: never lost."""

    def __init__(self, database: Path, holder: str) -> None:
        self.database, self.holder = database, holder
        self.path = Path(f"{database}.vault-drift.lock")
        self.on_lost: Callable[[], None] = lambda: None
        self.lost: str | None = None
        self._handle: int | None = None

    def take(self) -> None:
        try:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise VaultError(f"cannot create lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 400).decode("utf-8", "replace").strip() or "unknown"
            os.close(handle)
            raise LockHeld(self.database, self.path, holder) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{self.holder}\n".encode(), 0)
        self._handle = handle
        log.info("took the lock file", extra={"holder": self.holder, "lock": str(self.path)})

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            os.close(handle)


def wait_to_take(
    claim: Claim, stop: threading.Event, waiting: Callable[[Held], None], poll: float = POLL_SECONDS
) -> bool:
    """Try ``claim`` every ``poll`` seconds until it is ours (True) or ``stop`` is set (False);
    ``waiting`` hears who holds it after each refused try. A Vault that cannot be read at the
    moment (D1 down) is retried the same way."""
    while not stop.is_set():
        try:
            claim.take()
            return True
        except (LeaseHeld, LockHeld) as held:
            waiting(held)
        except VaultError as exc:
            log.warning("standby: cannot read the lease: %s", exc)
        stop.wait(poll)
    return False
