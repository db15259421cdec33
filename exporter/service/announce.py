"""Webhook events for the outbox (docs/webhooks.md), computed where their cause is written.

A check's events go in its ``CheckRecord`` and a sync's in its ``finish_audit``: the store
writes them in the same transaction (D1: the same batch) as the state change that caused
them, so a crash between the two loses nothing. What an event says is the pure core's
(``core/webhooks.py``); this only gathers what it needs from the current snapshot.
With no receiver configured (``announcer`` None) nothing is ever written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from exporter.core.model import AlertLevel, AudienceCheck, DriftMemory, SyncOutcome
from exporter.core.webhooks import (
    Announcer,
    Event,
    OutboxEntry,
    SyncContext,
    drift_events,
    sync_event,
)
from exporter.service.snapshots import SnapshotStore


class Announcements:
    def __init__(self, announcer: Announcer | None, snapshots: SnapshotStore) -> None:
        self.announcer, self.snapshots = announcer, snapshots

    @property
    def public_url(self) -> str:
        return self.announcer.public_url if self.announcer is not None else ""

    def entries(self, events: Iterable[Event]) -> tuple[OutboxEntry, ...]:
        """One outbox row per event and receiver: what a store write takes as ``outbox``."""
        if self.announcer is None:
            return ()
        return tuple(self.announcer.entries(events))

    def of_checks(
        self,
        checks: list[AudienceCheck],
        previous: Mapping[str, DriftMemory],
        at: datetime,
        closed_by_sync: str | None,
    ) -> tuple[OutboxEntry, ...]:
        """Drifts these checks opened, escalated or resolved."""
        if self.announcer is None:
            return ()
        snapshot = self.snapshots.current
        ignored = {name for name in snapshot.ignores if snapshot.ignore_of(name, at) is not None}
        events = drift_events(
            checks,
            dict(previous),
            snapshot.settings.levels,
            self.public_url,
            ignored=ignored,
            closed_by_sync=closed_by_sync,
        )
        return self.entries(events)

    def of_sync(
        self, outcome: SyncOutcome, trigger: str, actor: str, at: datetime
    ) -> tuple[OutboxEntry, ...]:
        """``sync.applied`` / ``sync.blocked`` of one sync's outcome (others say nothing)."""
        if self.announcer is None:
            return ()
        snapshot = self.snapshots.current
        check = snapshot.checks.get(outcome.audience)
        level = snapshot.level(check, at) if check is not None else AlertLevel.NONE
        namespace = check.audience.namespace if check is not None else ""
        provider = check.audience.provider if check is not None else ""
        context = SyncContext(namespace, provider, trigger, actor, level)
        event = sync_event(outcome, context, at, self.public_url)
        return self.entries([event] if event is not None else [])


NO_ANNOUNCEMENTS = Announcements(None, SnapshotStore())
