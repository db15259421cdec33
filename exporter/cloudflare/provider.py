"""Cloudflare Access as a provider (``exporter/core/provider.py``), in the domain's terms.

What the checker and the syncer did with the client before there was a second provider, moved
here unchanged: a full read is one paginated listing of every group (each kept packed until it
is evaluated), a group absent from it is asked for directly, once; a sync is read-modify-write
of the group's include list (only the diff), verified by reading the group back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from exporter.cloudflare.client import CloudflareClient, CloudflareError
from exporter.core.model import Actual, Audience, SyncPlan
from exporter.core.packed import Unpacked, packed_actual
from exporter.core.plan import email_rule, is_address, plan_in
from exporter.core.provider import (
    CAPABILITIES,
    CLOUDFLARE_ACCESS,
    Listing,
    ProviderStats,
    SyncMode,
    VerificationFailed,
)
from exporter.core.rules import actual_of, email_members

log = logging.getLogger("vault_drift.cloudflare")


class CloudflareAccess:
    """The ``cloudflare_access`` provider over one account's Access groups."""

    name = CLOUDFLARE_ACCESS
    capabilities = CAPABILITIES[CLOUDFLARE_ACCESS]

    def __init__(self, client: CloudflareClient) -> None:
        self.client = client

    def pause_left(self) -> float | None:
        return self.client.pause_left()

    def request_stats(self) -> ProviderStats:
        """The Access API's requests by HTTP method (D1's and the audit log's are not the
        provider's: ``vault_drift_cloudflare_requests_total`` has them)."""
        stats = self.client.stats.snapshot()
        paused = stats.paused_until_wall if self.pause_left() else None
        return ProviderStats(stats.requests, stats.rate_limited_total, paused)

    def actual_members(self, audiences: Sequence[Audience]) -> Listing:
        """Every group by one paginated listing, each kept packed until it is evaluated."""
        wanted = {a.group_id: a.audience for a in audiences if a.group_id is not None}
        if not wanted:
            return Listing({})
        found: dict[str, Callable[[], Actual]] = {}
        try:
            for group in self.client.iter_groups():
                if group.id in wanted:
                    found[wanted[group.id]] = packed_actual(actual_of(group))
        except CloudflareError as exc:
            log.warning("cloudflare listing failed: %s", exc)
            return Listing({name: Actual(error=str(exc)) for name in wanted.values()}, str(exc))
        for audience in audiences:  # absent from the listing: ask for it directly, once
            if audience.group_id is not None and audience.audience not in found:
                found[audience.audience] = packed_actual(self.actual_of(audience))
        return Listing(Unpacked(found))

    def actual_of(self, audience: Audience) -> Actual:
        assert audience.group_id is not None
        try:
            return actual_of(self.client.get_group(audience.group_id))
        except CloudflareError as exc:
            if exc.status == 404:
                return Actual()
            return Actual(error=str(exc))

    def plan(self, audience: Audience, expected: Collection[str], mode: SyncMode) -> SyncPlan:
        assert audience.group_id is not None
        group = self.client.get_group(audience.group_id)  # fresh read, never cached
        return plan_in(mode, audience.audience, group, expected)

    def apply(self, plan: SyncPlan) -> Actual:
        """PUT the whole group (name, exclude, require, is_default as read), read it back."""
        wanted = replace(plan.group, include=plan.new_include)
        self.client.replace_group(wanted)
        readback = self.client.get_group(plan.group.id)
        if email_members(readback.include) != email_members(plan.new_include):
            raise VerificationFailed(
                "verification failed: the group read back differs from what was sent"
            )
        return actual_of(readback)

    def create_group(self, name: str, emails: Collection[str]) -> tuple[str, Actual]:
        # Cloudflare refuses a whole group over one rule that is not an address.
        rules = [email_rule(e) for e in sorted(emails) if is_address(e)]
        group = self.client.create_group(name, rules)
        return group.id, actual_of(group)

    def applied(self, group_id: str, added: Collection[str], removed: Collection[str]) -> bool:
        have = email_members(self.client.get_group(group_id).include)
        return set(added) <= have and not (set(removed) & have)


__all__ = ["CloudflareAccess"]
