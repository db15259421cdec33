"""Webhook events (docs/webhooks.md): what happened to an audience, as a receiver reads it.

Pure: the events a check, a sync or a session revocation gives rise to, their JSON bodies,
and the outbox entries (one per event and receiver) that are persisted with the state
change that caused them. The signature and the delivery live elsewhere.

A body is ``{"type", "timestamp", "data"}``. ``data`` names the audience, its namespace and
provider, the status, the alert level and its reason, the counts, who changed it when the
audit log says so (``attribution``), the emails for syncs and revocations, and ``url``: the
audience on the operator page. No member email ever goes into ``url``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from exporter.core.levels import Verdict, verdict
from exporter.core.model import (
    AlertLevel,
    AudienceCheck,
    DriftMember,
    DriftMemory,
    Status,
    SyncOutcome,
    SyncResultKind,
)
from exporter.core.settings import Levels
from exporter.core.times import format_time

DRIFT_OPENED = "drift.opened"
DRIFT_LEVEL_CHANGED = "drift.level_changed"
DRIFT_RESOLVED = "drift.resolved"
SYNC_APPLIED = "sync.applied"
SYNC_BLOCKED = "sync.blocked"
SESSIONS_REVOKED = "sessions.revoked"
EVENT_TYPES = (
    DRIFT_OPENED,
    DRIFT_LEVEL_CHANGED,
    DRIFT_RESOLVED,
    SYNC_APPLIED,
    SYNC_BLOCKED,
    SESSIONS_REVOKED,
)


@dataclass(frozen=True)
class Event:
    """One event before it has an id: ``audience`` orders its deliveries."""

    type: str
    audience: str
    timestamp: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The JSON body, exactly as it is signed and sent (compact, keys in order)."""
        document = {"type": self.type, "timestamp": format_time(self.timestamp), "data": self.data}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class OutboxEntry:
    """One event for one receiver, as persisted: sent until the receiver takes it."""

    event_id: str  # webhook-id: the same on every retry, and for every receiver
    destination: str  # destination_key of the receiver's URL (never the URL: it may hold a token)
    audience: str
    type: str
    created_at: datetime
    body: str


@dataclass(frozen=True)
class Announcer:
    """Where events go: the receivers' keys, the page's address, and how ids are made.

    With no receiver nothing is written, so an unused outbox never grows.
    """

    destinations: tuple[str, ...]
    public_url: str
    new_id: Callable[[], str]

    def entries(self, events: Iterable[Event]) -> list[OutboxEntry]:
        entries = []
        for event in events:
            event_id, body = self.new_id(), event.body()
            entries += [
                OutboxEntry(event_id, d, event.audience, event.type, event.timestamp, body)
                for d in self.destinations
            ]
        return entries


def destination_key(url: str) -> str:
    """A receiver's name in the outbox and in logs: the URL itself may carry a token."""
    return "wh_" + hashlib.sha256(url.encode()).hexdigest()[:16]


def page_link(public_url: str, audience: str) -> str:
    """The audience's details on the operator page (``/details``, a page of its own that
    works without JavaScript): its name is the only thing in it, never an email."""
    return f"{public_url.rstrip('/')}/details?audience={quote(audience, safe='')}"


# -- events of a check ----------------------------------------------------------------------


def drift_events(
    checks: Iterable[AudienceCheck],
    previous: dict[str, DriftMemory],
    levels: Levels,
    public_url: str,
    ignored: Collection[str] = (),
    closed_by_sync: str | None = None,
) -> list[Event]:
    """What these checks changed, against the memories they were evaluated with: a drift
    opened, its alert level moved, or it resolved. A check in ``error`` says nothing (the
    episode stays open and its level is unknown). ``closed_by_sync`` names the actor when
    these checks follow our own sync (the drift was resolved by it)."""
    events = []
    for check in checks:
        before = previous.get(check.audience.audience, DriftMemory())
        event = drift_event(check, before, levels, public_url)
        if event is not None and event.type == DRIFT_RESOLVED:
            event.data["reason"] = "sync" if closed_by_sync else "external"
            if closed_by_sync:
                event.data["attribution"] = [{"actor": closed_by_sync, "source": "exporter"}]
        if event is not None:
            if check.audience.audience in ignored:
                event.data["ignored"] = True
            events.append(event)
    return events


def drift_event(
    check: AudienceCheck, before: DriftMemory, levels: Levels, public_url: str
) -> Event | None:
    if check.status is Status.ERROR:
        return None
    was = _previous_verdict(before, levels)
    now = verdict(check.status, check.missing_since, check.extra_since, check.checked_at, levels)
    drifting = check.status is Status.DRIFT
    if drifting and before.drift_since != check.memory.drift_since:
        kind = DRIFT_OPENED
    elif drifting and now.level is not was.level:
        kind = DRIFT_LEVEL_CHANGED
    elif not drifting and before.drift_since is not None:
        kind = DRIFT_RESOLVED
    else:
        return None
    data = _audience_data(check, public_url)
    data.update(
        level=str(now.level), reason=now.reason, drift_since=format_time(before.drift_since)
    )
    if drifting:
        data["drift_since"] = format_time(check.memory.drift_since)
    if kind != DRIFT_OPENED:
        data["previous_level"] = str(was.level)
    data["attribution"] = _attribution(check.missing + check.extra)
    return Event(kind, check.audience.audience, check.checked_at, data)


def _previous_verdict(before: DriftMemory, levels: Levels) -> Verdict:
    """The level the previous check announced: judged at the last check that read both sides."""
    if before.drift_since is None or before.observed_at is None:
        return Verdict()
    return verdict(
        Status.DRIFT, before.missing_since, before.extra_since, before.observed_at, levels
    )


def _audience_data(check: AudienceCheck, public_url: str) -> dict[str, Any]:
    audience = check.audience
    return {
        "audience": audience.audience,
        "namespace": audience.namespace,
        "provider": audience.provider,
        "status": str(check.status),
        "counts": {
            "expected": check.expected_count,
            "actual": check.actual_count,
            "missing": len(check.missing),
            "extra": len(check.extra),
        },
        "url": page_link(public_url, audience.audience),
    }


def _attribution(members: Sequence[DriftMember]) -> list[dict[str, Any]] | None:
    """Who made these members drift, as the audit log says (each actor once); None when
    nothing is known. Member emails stay out: a drift event carries counts, not people."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for member in members:
        changed = member.attribution.changed_by if member.attribution else None
        if changed is None:
            continue
        entry = seen.setdefault(
            (changed.actor, changed.interface),
            {
                "actor": changed.actor,
                "actor_type": changed.actor_type,
                "interface": changed.interface,
                "source": changed.source,
                "at": format_time(changed.at),
                "members": 0,
            },
        )
        entry["members"] += 1
    return list(seen.values()) or None


# -- events of a sync and of a revocation ----------------------------------------------------


@dataclass(frozen=True)
class SyncContext:
    """What a sync event says beyond the outcome: who ran it and where the audience stands."""

    namespace: str
    provider: str
    trigger: str  # api | page | cli | auto
    actor: str
    level: AlertLevel = AlertLevel.NONE  # the audience's level when the sync ran


def sync_event(
    outcome: SyncOutcome, context: SyncContext, at: datetime, public_url: str
) -> Event | None:
    """``sync.applied`` for a sync that changed the group, ``sync.blocked`` for one a guard
    refused; a no-op, an error or a dry run is no event."""
    if outcome.result is SyncResultKind.SYNCED:
        kind = SYNC_APPLIED
    elif outcome.result is SyncResultKind.BLOCKED:
        kind = SYNC_BLOCKED
    else:
        return None
    data: dict[str, Any] = {
        "audience": outcome.audience,
        "namespace": context.namespace,
        "provider": context.provider,
        "status": str(outcome.result),
        "level": str(context.level),
        "reason": outcome.reason,
        "blocked_reason": outcome.blocked_reason,
        "counts": {"added": len(outcome.added), "removed": len(outcome.removed)},
        "added": list(outcome.added),
        "removed": list(outcome.removed),
        "attribution": {"actor": context.actor, "trigger": context.trigger},
        "url": page_link(public_url, outcome.audience),
    }
    return Event(kind, outcome.audience, at, data)


def sessions_revoked_event(
    audience: str,
    namespace: str,
    provider: str,
    emails: Sequence[str],
    why: str,
    at: datetime,
    public_url: str,
) -> Event:
    """``sessions.revoked``: these emails' Access sessions were ended (``why``: ``sync`` |
    ``auto_sync`` | ``observed_removal``). One event per audience and cycle."""
    data: dict[str, Any] = {
        "audience": audience,
        "namespace": namespace,
        "provider": provider,
        "status": "revoked",
        "reason": why,
        "counts": {"revoked": len(emails)},
        "emails": sorted(emails),
        "url": page_link(public_url, audience),
    }
    return Event(SESSIONS_REVOKED, audience, at, data)
