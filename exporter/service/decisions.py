"""The operator's decisions and records: settings, ignores, an audience's history and syncs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.clock import Clock, utc_now
from exporter.core.model import Ignore
from exporter.core.settings import Settings, apply_settings
from exporter.core.snapshot import Snapshot
from exporter.service.snapshots import SnapshotStore
from exporter.vault.store import AudienceHistory, AuditRow, VaultStore


class Decisions:
    def __init__(
        self, vault: VaultStore, snapshots: SnapshotStore, *, clock: Clock = utc_now
    ) -> None:
        self.vault, self.snapshots, self.clock = vault, snapshots, clock

    def load(self) -> Snapshot:
        """Publish the persisted settings, ignores and exemptions (at start, before the first
        check: a one-shot sync honours the exemptions too)."""
        self.snapshots.set_exemptions(self.vault.exemptions(None))
        return self.snapshots.decisions(self.vault.settings(), self.vault.ignores())

    def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Validate (SettingsError naming every bad key), persist, and apply at once."""
        settings = apply_settings(self.snapshots.current.settings, changes)
        self.vault.save_settings(settings)
        self.snapshots.decisions(settings, self.snapshots.current.ignores)
        return settings

    def ignore(self, audience: str, until: datetime, reason: str, actor: str) -> Snapshot:
        now = self.clock()
        self.vault.set_ignore(audience, Ignore(until, reason, actor), now)
        return self._reload_ignores()

    def unignore(self, audience: str) -> tuple[bool, Snapshot]:
        removed = self.vault.clear_ignore(audience)
        return removed, self._reload_ignores()

    def history(self, audience: str) -> AudienceHistory:
        return self.vault.history(audience)

    def audit(self, audience: str | None = None, limit: int = 20) -> list[AuditRow]:
        return self.vault.audit(audience, limit=limit)

    def _reload_ignores(self) -> Snapshot:
        current = self.snapshots.current
        return self.snapshots.decisions(current.settings, self.vault.ignores())
