"""Recovery after a crash: syncs a previous process left ``in_progress`` are settled.

Every sync writes its audit row *before* anything is sent, so a crash between the PUT and its
bookkeeping leaves a row ``in_progress``: the group is read back and the row gets the outcome
the read-back shows (docs/design.md, "Crash safety"), from the audience's own provider.
"""

from __future__ import annotations

import logging
from datetime import datetime

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.provider import CloudflareAccess
from exporter.core.model import SyncOutcome, SyncResultKind
from exporter.core.provider import CLOUDFLARE_ACCESS, ProviderError, group_noun
from exporter.core.webhooks import OutboxEntry
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.providers import NoProvider, Providers
from exporter.vault.store import AuditRow, VaultStore

log = logging.getLogger("vault_drift.sync")


class Recovery:
    def __init__(
        self,
        vault: VaultStore,
        cloudflare: CloudflareClient,
        *,
        clock: Clock = utc_now,
        providers: Providers | None = None,
        announcements: Announcements | None = None,
    ) -> None:
        self.vault, self.cloudflare, self.clock = vault, cloudflare, clock
        self.providers = providers or Providers({CLOUDFLARE_ACCESS: CloudflareAccess(cloudflare)})
        # a sync the read-back shows applied is announced now (its event was to go with it)
        self.announcements = announcements or NO_ANNOUNCEMENTS

    def settle_interrupted(self, up_to_id: int | None = None) -> int:
        """Audit rows left ``in_progress`` by a crash: read the group back, record the outcome.

        ``up_to_id`` limits it to the rows a previous process left (a later row may belong
        to a sync still running, in this process or in a CLI next to it).
        """
        rows = self.vault.audit(result="in_progress", limit=1000)
        if up_to_id is not None:
            rows = [row for row in rows if row["id"] <= up_to_id]
        settled = 0
        for row in rows:
            try:
                outcome, reason = self._settle(row)
            except ProviderError as exc:
                log.warning("cannot settle interrupted sync %s yet: %s", row["id"], exc)
                continue
            now = self.clock()
            outbox = self._outbox(row, outcome, reason, now)
            self.vault.finish_audit(row["id"], outcome, reason, now, outbox)
            settled += 1
        return settled

    def _outbox(
        self, row: AuditRow, result: str, reason: str, now: datetime
    ) -> tuple[OutboxEntry, ...]:
        """``sync.applied`` of a sync that reached Cloudflare before the crash."""
        if row["action"] != "sync" or result != str(SyncResultKind.SYNCED):
            return ()
        added, removed = tuple(row["added"]), tuple(row["removed"])
        outcome = SyncOutcome(row["audience"], SyncResultKind.SYNCED, added, removed, reason)
        return self.announcements.of_sync(outcome, row["trigger"], row["actor"], now)

    def _settle(self, row: AuditRow) -> tuple[str, str]:
        group_id = row.get("group_id")
        if row["action"] != "sync" or not isinstance(group_id, str):
            return "error", "interrupted by a restart before completion"
        audience = {a.audience: a for a in self.vault.audiences()}.get(str(row["audience"]))
        if audience is None:
            return "error", "interrupted by a restart; the audience is gone"
        try:
            provider = self.providers.of(audience)
        except NoProvider as exc:
            return "error", f"interrupted by a restart; cannot read the group back: {exc.reason}"
        if provider.applied(group_id, row["added"], row["removed"]):
            return "synced", "interrupted by a restart; the read-back shows the change applied"
        noun = group_noun(audience.provider).split()[0]
        return "error", f"interrupted by a restart before the change reached {noun}"
