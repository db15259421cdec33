"""The current snapshot: what /metrics, the API and the page are served from.

It is replaced whole, under one lock, so a reader always sees one consistent snapshot; the
results of a partial check are folded in by one merge function.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from exporter.core.exemptions import Exemption
from exporter.core.exposure import RevocationTotals
from exporter.core.model import AudienceCheck, Ignore
from exporter.core.settings import Settings
from exporter.core.snapshot import Snapshot


class SnapshotStore:
    def __init__(self, initial: Snapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._current = initial or Snapshot()
        self._decided = 0  # how many times the operator's decisions changed

    @property
    def decided(self) -> int:
        """Taken by a check before it reads the settings and ignores: if the operator changes
        them while it runs, what it read is older than the snapshot's and is not published."""
        return self._decided

    @property
    def current(self) -> Snapshot:
        return self._current

    def publish(self, snapshot: Snapshot, decided: int | None = None) -> Snapshot:
        """Replace the snapshot whole (a full check), but for decisions newer than its own."""
        with self._lock:
            if decided is not None and decided != self._decided:
                current = self._current
                snapshot = replace(snapshot, settings=current.settings, ignores=current.ignores)
            self._current = snapshot
            return snapshot

    def merge(
        self,
        checks: Iterable[AudienceCheck],
        *,
        ignores: dict[str, Ignore] | None = None,
        last_check_at: datetime | None = None,
        revocations: RevocationTotals | None = None,
        vault_up: bool | None = None,
        decided: int | None = None,
    ) -> Snapshot:
        """Fold some audiences' fresh checks into the snapshot, keeping audiences in order."""
        with self._lock:
            if decided is not None and decided != self._decided:
                ignores = None  # the operator's are newer than those read
            merged = dict(self._current.checks)
            merged.update({check.audience.audience: check for check in checks})
            self._current = replace(
                self._current,
                checks=dict(sorted(merged.items())),
                ignores=self._current.ignores if ignores is None else ignores,
                last_check_at=last_check_at or self._current.last_check_at,
                revocations=self._current.revocations if revocations is None else revocations,
                vault_up=self._current.vault_up if vault_up is None else vault_up,
            )
            return self._current

    def decisions(self, settings: Settings, ignores: dict[str, Ignore]) -> Snapshot:
        """The operator changed settings or ignores: they apply at once, without a check."""
        with self._lock:
            self._current = replace(self._current, settings=settings, ignores=ignores)
            self._decided += 1
            return self._current

    def set_exemptions(self, exemptions: dict[str, tuple[Exemption, ...]]) -> Snapshot:
        """The exemptions nobody ended, as just read (a check, or an operator's change)."""
        with self._lock:
            self._current = replace(self._current, exemptions=exemptions)
            return self._current
