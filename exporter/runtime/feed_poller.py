"""The change feed's clock: one poll of Cloudflare's audit log every ``feed_interval_seconds``
(read again before each wait, so a new setting applies at once), in its own thread. Polls
start at that rate: a poll whose checks took a while does not push the next one later. What a
poll does is ``service/feed.py``; each edit it finds is checked through the cycle."""

from __future__ import annotations

import logging
import threading
import time

from exporter.core.feed import next_poll_delay
from exporter.service.feed import ChangeFeed

log = logging.getLogger("vault_drift.feed")


class FeedPoller:
    def __init__(self, feed: ChangeFeed, *, first_delay: float = 5.0) -> None:
        self.feed = feed
        self._first_delay = first_delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-drift-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self._first_delay  # the first full check goes first
        while not self._stop.wait(delay):
            started = time.monotonic()
            try:
                self.feed.poll()
            except Exception:
                log.exception("change feed poll failed")
            took = time.monotonic() - started
            delay = next_poll_delay(self.feed.settings.feed_interval_seconds, took)
