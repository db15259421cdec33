"""The thread that keeps a D1 Vault's writer lease for ``serve`` (docs/design.md, "One writer")."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from exporter.clock import utc_now
from exporter.cloudflare.wire import CloudflareError
from exporter.vault.d1 import D1Store
from exporter.vault.store import VaultError

log = logging.getLogger("vault_drift.d1")


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
