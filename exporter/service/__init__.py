"""The services the handlers call: Checker, Syncer, Decisions, around one SnapshotStore."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.provider import CloudflareAccess
from exporter.core.provider import Provider
from exporter.core.webhooks import Announcer
from exporter.service.announce import NO_ANNOUNCEMENTS, Announcements
from exporter.service.attribution import Attributor
from exporter.service.checker import Checker, UnknownAudience
from exporter.service.cycle import CycleService
from exporter.service.decisions import Decisions
from exporter.service.events import Events
from exporter.service.exemptions import ExemptionService
from exporter.service.feed import ChangeFeed
from exporter.service.providers import Providers
from exporter.service.recovery import Recovery
from exporter.service.snapshots import SnapshotStore
from exporter.service.syncer import Syncer
from exporter.service.work_lock import Busy, WorkLock
from exporter.vault.store import VaultStore


@dataclass(frozen=True)
class Services:
    vault: VaultStore
    cloudflare: CloudflareClient
    snapshots: SnapshotStore
    checker: Checker
    syncer: Syncer
    decisions: Decisions
    cycle: CycleService
    providers: Providers  # each audience's provider, by sys_infra_state.provider
    exemptions: ExemptionService
    # webhook events for the outbox: a new event source passes ``announcements.entries(...)``
    # to the store write that records its cause (docs/webhooks.md, "Adding an event type")
    announcements: Announcements = NO_ANNOUNCEMENTS
    feed: ChangeFeed | None = None  # the change feed (serve only: it reads the audit log)


def assemble(
    vault: VaultStore,
    cloudflare: CloudflareClient,
    *,
    clock: Clock = utc_now,
    events: Events | None = None,
    lock_timeout: float = 30.0,
    attribution: bool = False,
    vault_api_actors: Collection[str] = (),
    announcer: Announcer | None = None,
    providers: Sequence[Provider] = (),
    unavailable: Mapping[str, str] | None = None,
) -> Services:
    """The services around an open store and a client, the persisted decisions loaded;
    ``attribution`` reads Cloudflare's audit log to say who changed drifting members;
    ``announcer`` puts webhook events in the outbox (None: no receiver configured);
    ``providers`` beside Cloudflare Access (AWS IAM Identity Center), and ``unavailable``:
    why a provider is not wired (its audiences are ``error`` with that reason)."""
    snapshots = SnapshotStore()
    announcements = Announcements(announcer, snapshots)
    decisions = Decisions(vault, snapshots, clock=clock)
    decisions.load()
    lock = WorkLock(lock_timeout)
    attributor = (
        Attributor(vault, cloudflare.audit_log(), vault_api_actors=vault_api_actors)
        if attribution
        else None
    )
    wired = Providers({p.name: p for p in (CloudflareAccess(cloudflare), *providers)}, unavailable)
    checker = Checker(
        vault,
        cloudflare,
        snapshots,
        clock=clock,
        events=events,
        attribution=attributor,
        announcements=announcements,
        providers=wired,
    )
    syncer = Syncer(
        vault,
        cloudflare,
        snapshots,
        checker,
        clock=clock,
        events=events,
        announcements=announcements,
        providers=wired,
    )
    recovery = Recovery(
        vault, cloudflare, clock=clock, providers=wired, announcements=announcements
    )
    cycle = CycleService(checker, syncer, recovery, lock, clock=clock)
    feed = (
        ChangeFeed(cycle, snapshots, attributor.reader, attributor, clock=clock)
        if attributor is not None
        else None
    )
    exemptions = ExemptionService(vault, snapshots, cycle, clock=clock)
    return Services(
        vault,
        cloudflare,
        snapshots,
        checker,
        syncer,
        decisions,
        cycle,
        wired,
        exemptions,
        announcements,
        feed,
    )


__all__ = [
    "Busy",
    "ChangeFeed",
    "Checker",
    "CycleService",
    "Decisions",
    "ExemptionService",
    "Services",
    "Syncer",
    "UnknownAudience",
    "assemble",
]
