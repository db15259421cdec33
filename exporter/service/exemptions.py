"""Exemptions: made, ended and expired by the operator's service, applied by the checks.

An exemption changes what a check concludes (docs/exemptions.md), so making or ending one
re-checks its audience at once, through the cycle like every other check; expiry needs no
restart: ``expire_due`` (the scheduler runs it every few seconds) marks those past their end
date and re-checks their audiences, whose members drift again from that end.
"""

from __future__ import annotations

import logging
from datetime import datetime

from exporter.clock import Clock, utc_now
from exporter.core.exemptions import DELETED, EXPIRED, Exemption, due_to_expire, exemption_problems
from exporter.core.model import Side
from exporter.service.checker import UnknownAudience
from exporter.service.cycle import CycleService
from exporter.service.snapshots import SnapshotStore
from exporter.service.work_lock import Busy
from exporter.vault.exemptions import EXPIRY_ACTOR
from exporter.vault.store import VaultStore

log = logging.getLogger("vault_drift.exemptions")
RECHECK_TIMEOUT = 10.0  # seconds to wait for a running cycle; past it the next one applies it


class ExemptionError(ValueError):
    """A new exemption is invalid; ``problems`` names each thing wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def open_exemptions(vault: VaultStore) -> dict[str, tuple[Exemption, ...]]:
    return vault.exemptions(None)


class ExemptionService:
    def __init__(
        self,
        vault: VaultStore,
        snapshots: SnapshotStore,
        cycle: CycleService | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.vault, self.snapshots, self.cycle, self.clock = vault, snapshots, cycle, clock

    def listing(self, audience: str) -> tuple[Exemption, ...]:
        """The audience's exemptions in force (UnknownAudience if it has no check)."""
        self._known(audience)
        return self.snapshots.current.exemptions_of(audience, self.clock())

    def exempt(
        self,
        audience: str,
        email: str,
        side: str,
        reason: str,
        expires_at: datetime,
        owner: str,
    ) -> Exemption:
        """Make (or replace) the member's exemption, then re-check the audience."""
        self._known(audience)
        now = self.clock()
        email = email.strip().lower()
        problems = exemption_problems(email, side, reason, expires_at, now)
        if problems:
            raise ExemptionError(problems)
        exemption = Exemption(audience, email, Side(side), reason.strip(), owner, now, expires_at)
        self.vault.add_exemption(exemption)
        log.info("exemption made audience=%s side=%s until=%s", audience, side, expires_at)
        self._applied([audience])
        return exemption

    def end(self, audience: str, email: str, by: str) -> bool:
        """End the member's exemption now (False: none in force), then re-check."""
        self._known(audience)
        self.expire_due(recheck=False)  # one past its end date expired: it is not deleted
        ended = self.vault.end_exemption(audience, email.strip().lower(), self.clock(), by, DELETED)
        if ended:
            log.info("exemption deleted audience=%s", audience)
            self._applied([audience])
        return ended

    def expire_due(self, recheck: bool = True) -> int:
        """Mark the exemptions past their end date expired (each ends at its end date), and
        re-check their audiences: their members drift again from that end."""
        now = self.clock()
        due = due_to_expire(self.snapshots.current.exemptions, now)
        for exemption in due:
            self.vault.end_exemption(
                exemption.audience, exemption.email, now, EXPIRY_ACTOR, EXPIRED
            )
            log.info("exemption expired audience=%s side=%s", exemption.audience, exemption.side)
        if due:
            names = sorted({e.audience for e in due})
            if recheck:
                self._applied(names)
            else:
                self.reload()
        return len(due)

    def reload(self) -> None:
        self.snapshots.set_exemptions(open_exemptions(self.vault))

    def _applied(self, audiences: list[str]) -> None:
        """Publish the change, then re-check the audiences it concerns (if nothing else is
        running: otherwise the cycle running, or the next, applies it)."""
        self.reload()
        if self.cycle is None:
            return
        try:
            self.cycle.check_audiences(audiences, "exemption", timeout=RECHECK_TIMEOUT)
        except Busy:
            log.info("exemption: a check is running; the next one applies it")
        except UnknownAudience:
            pass  # it left sys_infra_state meanwhile

    def _known(self, audience: str) -> None:
        if audience not in self.snapshots.current.checks:
            raise UnknownAudience([audience])
