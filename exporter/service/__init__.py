"""The services the handlers call: Checker, Syncer, Operator, around one SnapshotStore."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.service.attribution import Attributor
from exporter.service.checker import Checker, UnknownAudience
from exporter.service.events import Events
from exporter.service.operator import Operator
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
    operator: Operator


def assemble(
    vault: VaultStore,
    cloudflare: CloudflareClient,
    *,
    clock: Clock = utc_now,
    events: Events | None = None,
    lock_timeout: float = 30.0,
    attribution: bool = False,
    vault_api_actors: Collection[str] = (),
) -> Services:
    """The services around an open store and a client, the persisted decisions loaded;
    ``attribution`` reads Cloudflare's audit log to say who changed drifting members."""
    snapshots = SnapshotStore()
    operator = Operator(vault, snapshots, clock=clock)
    operator.load()
    lock = WorkLock(lock_timeout)
    attributor = (
        Attributor(vault, cloudflare.audit_log(), vault_api_actors=vault_api_actors)
        if attribution
        else None
    )
    checker = Checker(
        vault, cloudflare, snapshots, lock, clock=clock, events=events, attribution=attributor
    )
    syncer = Syncer(vault, cloudflare, checker)
    return Services(vault, cloudflare, snapshots, checker, syncer, operator)


__all__ = ["Busy", "Checker", "Operator", "Services", "Syncer", "UnknownAudience", "assemble"]
