"""The delivery thread of ``serve``: runs the dispatcher's passes, never a check's time.

It sleeps until the next retry is due, a check wakes it (``wake``), or ``idle`` passes (the
outbox may hold rows a one-shot ``check`` or ``sync`` wrote). A pass that fails (the Vault
unreadable) is tried again after ``idle``; nothing it does can block or fail a check.
"""

from __future__ import annotations

import logging
import threading

from exporter.webhooks.delivery import Dispatcher

log = logging.getLogger("vault_drift.webhooks")


class DeliveryWorker:
    def __init__(self, dispatcher: Dispatcher, idle: float = 60.0) -> None:
        self.dispatcher, self.idle = dispatcher, idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> DeliveryWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        """New rows may be in the outbox: look now."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                due = self.dispatcher.run_once()
            except Exception:
                log.exception("webhook delivery pass failed; trying again later")
                due = self.idle
            wait = self.idle if due is None else min(max(due, 0.0), self.idle)
            if wait > 0:
                self._wake.wait(wait)
