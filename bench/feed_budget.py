"""The change feed's cost in Cloudflare requests, before and after (docs/benchmarks.md,
"Change feed").

    python -m bench.feed_budget              # 300 groups, 100 and 25 groups a page
    python -m bench.feed_budget --groups 30  # a quick run

Each kind of work is run for real against the simulated Cloudflare (Access, audit log and
D1 behind one base URL) on a simulated clock, and its requests are counted from the
simulator's log: a full check, a quiet feed poll, a poll that finds one manual edit (its
targeted check included). An hour is then those counts times how often each happens:

- before: no feed, a full check every minute (the interval the issue starts from);
- after: the defaults, a poll every 30 s and a full listing every 15 minutes, plus the
  edits of the hour (0, then one every 5 minutes).

On D1, every ``serve`` (one replica too) holds the writer lease, renewed every third of
``VAULT_DRIFT_D1_LEASE`` (60 s by default); a ``serve --standby`` beside it reads the lease
every 5 s. Both are D1 requests on Cloudflare's API, counted here from one renewal and one
refused take, and added as rows of their own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.d1 import D1Client
from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.simulator import CloudflareSimulator
from exporter.runtime.lease_keeper import POLL_SECONDS
from exporter.service import Services, assemble
from exporter.vault.d1 import D1Store
from exporter.vault.lease import LeaseHeld

from .world import build_world

BUDGET_PER_HOUR = 1200 * 12  # 1,200 requests per 5 minutes
D1_LEASE_SECONDS = 60  # VAULT_DRIFT_D1_LEASE's default


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def kind(path: str) -> str:
    if "/d1/" in path:
        return "d1"
    if path.endswith("/audit_logs"):
        return "audit_log"
    if path.endswith("/access/groups"):
        return "access_listing"
    if "/access/groups/" in path:
        return "access_get"
    return "other"


def counted(simulator: CloudflareSimulator, work: Any) -> Counter[str]:
    mark = len(simulator.request_log)
    work()
    return Counter(kind(path) for _, path, _ in simulator.request_log[mark:])


def wired(sim: CloudflareSimulator, database_id: str, clock: Clock) -> Services:
    cf = CloudflareClient(
        base_url=sim.base_url, account_id="demo-account", token="demo-token", timeout=60
    )
    d1 = D1Client(
        base_url=sim.base_url,
        account_id="demo-account",
        database_id=database_id,
        token="demo-token",
        gate=cf.rate_gate,
        stats=cf.stats,
        timeout=60,
    )
    return assemble(D1Store(d1).open(), cf, clock=clock, attribution=True)


def measure(groups: int, members: int, page: int) -> dict[str, Any]:
    clock = Clock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=page, wall_clock=clock) as sim,
    ):
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members)
        d1 = D1Simulator(db)
        sim.attach_d1(d1)
        services = wired(sim, d1.database_id, clock)
        feed = services.feed
        assert feed is not None
        services.cycle.check_all("schedule")  # the first check (sizes known, groups known)
        clock.advance(60)
        full = counted(sim, lambda: services.cycle.check_all("schedule"))
        clock.advance(30)
        feed.poll()  # the cursor set
        clock.advance(30)
        quiet = counted(sim, feed.poll)
        target = next(g for g in sim.groups() if g["name"] == "aud-0001")
        include = [*target["include"], {"email": {"email": "friend@example.org"}}]
        sim.set_include(target["id"], include, by="jane@corp.example")
        clock.advance(30)
        edit = counted(sim, feed.poll)
        assert feed.stats().checks == 1, "the edit was not checked"
        assert edit["access_listing"] == 0, "a listing for one edit"
        lease = lease_costs(sim, services, d1.database_id, clock)
        d1.close()
    return {
        "full_check": dict(full),
        "quiet_poll": dict(quiet),
        "poll_with_edit": dict(edit),
        **lease,
    }


def lease_costs(
    sim: CloudflareSimulator, services: Services, database_id: str, clock: Clock
) -> dict[str, dict[str, int]]:
    """Requests of one lease renewal by the leader, and of one read by a standby."""
    leader = services.vault
    assert isinstance(leader, D1Store)
    leader.acquire_lease("bench-leader", clock(), D1_LEASE_SECONDS)
    renewal = counted(sim, lambda: leader.renew_lease(clock()))
    standby = wired(sim, database_id, clock).vault
    assert isinstance(standby, D1Store)

    def refused_take() -> None:
        try:
            standby.acquire_lease("bench-standby", clock(), D1_LEASE_SECONDS)
        except LeaseHeld:
            return
        raise AssertionError("the standby took a lease that was held")

    read = counted(sim, refused_take)
    return {"lease_renewal": dict(renewal), "standby_lease_read": dict(read)}


def per_hour(
    costs: dict[str, Any],
    full_every: int,
    poll_every: int | None,
    edits: int,
    lease: bool = False,
    standby: bool = False,
) -> dict:
    hour: Counter[str] = Counter()
    if lease:  # the leader's renewals, every third of the lease
        for key, value in costs["lease_renewal"].items():
            hour[f"{key}_lease"] += value * 3600 * 3 // D1_LEASE_SECONDS
    if standby:  # a standby's read of the lease
        for key, value in costs["standby_lease_read"].items():
            hour[f"{key}_standby"] += int(value * 3600 // POLL_SECONDS)
    for key, value in costs["full_check"].items():
        hour[key] += value * 3600 // full_every
    if poll_every is not None:
        polls = 3600 // poll_every
        for key, value in costs["quiet_poll"].items():
            hour[key] += value * (polls - edits)
        for key, value in costs["poll_with_edit"].items():
            hour[key] += value * edits
    total = sum(hour.values())
    return {
        "by_kind": dict(sorted(hour.items())),
        "total": total,
        "budget_share_percent": round(100 * total / BUDGET_PER_HOUR, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="30 groups (the smoke test)")
    args = parser.parse_args(argv)
    if args.small:
        args.groups = 30
    result: dict[str, Any] = {"groups": args.groups, "members": args.members, "pages": {}}
    for page in (100, 25):
        costs = measure(args.groups, args.members, page)
        result["pages"][page] = {
            "costs": costs,
            "before_1min_no_feed": per_hour(costs, 60, None, 0),
            "after_defaults_no_edit": per_hour(costs, 900, 30, 0),
            "after_defaults_12_edits": per_hour(costs, 900, 30, 12),
            "after_no_edit_with_lease": per_hour(costs, 900, 30, 0, lease=True),
            "after_12_edits_with_lease": per_hour(costs, 900, 30, 12, lease=True),
            "after_no_edit_with_standby_ha": per_hour(costs, 900, 30, 0, lease=True, standby=True),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
