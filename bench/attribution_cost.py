"""What attribution costs: audit-log requests of a running exporter whose groups are edited by
hand (docs/benchmarks.md, "Who changed it").

    python -m bench.attribution_cost           # 300 groups, 1 % drifting an hour, 15 and 1 min
    python -m bench.attribution_cost --small   # a quick run (the test suite's smoke check)

The real services (``Checker`` with its ``Attributor``) run against the simulated Cloudflare,
whose audit log records each edit; time is simulated (a clock the script moves), so hours of
checks take seconds. Every hour, 1 % of the groups get a dashboard edit by a person at a
random minute (one extra member each); each drift is synced an hour later (a PUT by the
exporter, in the log too). Beside them the log gets ``noise`` entries an hour about other
resources (zones, DNS...), which every listing has to page through.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.cloudflare.client import CloudflareClient
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_audit import Actor
from exporter.service import assemble
from exporter.service.syncer import SyncRequest
from exporter.vault import SqliteStore

from .world import build_world

BUDGET_PER_HOUR = 1200 * 12  # 1,200 requests per 5 minutes
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
EDITOR = Actor("jane@corp.example")
OTHERS = Actor("ops@corp.example")


class SimulatedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run(
    groups: int, hours: int, interval_minutes: int, drifting_per_hour: float, noise: int
) -> dict[str, Any]:
    clock = SimulatedClock(START)
    rng = random.Random(16)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=100, wall_clock=clock) as sim,
    ):
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members=5)
        client = CloudflareClient(
            base_url=sim.base_url, account_id="demo-account", token="demo-token"
        )
        services = assemble(SqliteStore(db).open(), client, clock=clock, attribution=True)
        attributor = services.checker.attribution
        assert attributor is not None
        group_ids = {g["name"]: g["id"] for g in sim.groups()}
        edits: list[tuple[datetime, str]] = []  # (when, audience)
        per_hour = max(1, round(groups * drifting_per_hour))
        for hour in range(hours):
            for audience in rng.sample(sorted(group_ids), per_hour):
                at = START + timedelta(hours=hour, minutes=rng.randrange(60), seconds=7)
                edits.append((at, audience))
        edits.sort()
        checks, found, named, fixes = 0, 0, 0, []
        end = START + timedelta(hours=hours)
        step = timedelta(minutes=interval_minutes)
        noise_every = timedelta(hours=1) / noise if noise else None
        next_noise = START
        while clock.now < end:
            tick = clock.now + step
            while edits and edits[0][0] < tick:  # the hand edits of this interval
                clock.now, audience = edits.pop(0)
                group = sim.group(group_ids[audience])
                stray = {"email": {"email": f"contractor-{clock.now:%H%M}@example.org"}}
                sim.set_include(group["id"], [*group["include"], stray], EDITOR)
                fixes.append((clock.now + timedelta(hours=1), audience))
            while noise_every is not None and next_noise < tick:  # other resources' entries
                clock.now = next_noise
                sim.audit.record("update", f"zone-{next_noise:%H%M%S}", {}, {}, OTHERS, "UI")
                next_noise += noise_every
            clock.now = tick
            due = [a for when, a in fixes if when <= clock.now]
            fixes = [(when, a) for when, a in fixes if when > clock.now]
            if due:  # an operator syncs the drifts of an hour ago: the exporter's own PUTs
                services.syncer.sync(SyncRequest(sorted(set(due)), actor="bench", force=True))
            snapshot = services.checker.check_all("schedule")
            checks += 1
            for check in snapshot.checks.values():
                for member in check.extra:
                    outcome = member.attribution.outcome if member.attribution else None
                    found += outcome == "found"
                    named += outcome in ("found", "not_found", "expired")
        stats = client.stats.snapshot()
        audit = sum(stats.audit.values())
        access = sum(stats.requests.values())
        hours_f = float(hours)
        return {
            "groups": groups,
            "hours": hours,
            "interval_minutes": interval_minutes,
            "drifting_groups_per_hour": per_hour,
            "noise_entries_per_hour": noise,
            "checks": checks,
            "listings": attributor.listings,
            "audit_requests": audit,
            "audit_requests_per_hour": round(audit / hours_f, 2),
            "audit_budget_share_percent": round(100 * audit / hours_f / BUDGET_PER_HOUR, 3),
            "all_requests_per_hour": round((audit + access) / hours_f, 1),
            "all_budget_share_percent": round(
                100 * (audit + access) / hours_f / BUDGET_PER_HOUR, 2
            ),
            "manual_changes_counted": sum(snapshot.manual_changes.values()),
            "extra_member_checks_attributed": found,
            "extra_member_checks_resolved": named,
            "attribution_up": snapshot.attribution_up,
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.small:
        runs = [run(groups=30, hours=2, interval_minutes=15, drifting_per_hour=0.1, noise=20)]
    else:
        runs = [
            run(groups=300, hours=24, interval_minutes=15, drifting_per_hour=0.01, noise=200),
            run(groups=300, hours=6, interval_minutes=1, drifting_per_hour=0.01, noise=200),
        ]
    result = {"budget_per_hour": BUDGET_PER_HOUR, "runs": runs}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
