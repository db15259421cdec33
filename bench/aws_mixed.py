"""A full check of a mixed world: Cloudflare audiences on the simulator, AWS audiences on moto.

    python -m bench.aws_mixed                  # 300 Cloudflare + 100 AWS audiences of 100 members
    python -m bench.aws_mixed --small          # 30 + 10 audiences of 20, one run each
    python -m bench.aws_mixed --cf 300 --aws 100 --members 100 --runs 3

Each check runs in a fresh child process (``--child``) through the cycle service, as ``serve``
runs it, so neither the simulator's nor moto's memory is counted. The same Cloudflare world is
checked alone first (its baseline), then with the AWS audiences beside it. Prints JSON: wall
time (median and max), requests per check by provider and operation, peak RSS.
Needs the ``aws`` extra (moto's server mode). docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exporter.demo.simulator import CloudflareSimulator
from exporter.service.events import NoEvents

from .world import _vault_audience, build_world

PAGE_CAP = 100


class MotoSeeder:
    """Seeds moto's identity store directly, in the process that serves it: 10,000 users
    through its HTTP API take minutes on a shared machine, the check's reads stay HTTP."""

    def __init__(self, store_id: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.identitystore.models import identitystore_backends

        from exporter.aws.local import LOCAL_REGION

        self.backend = identitystore_backends[DEFAULT_ACCOUNT_ID][LOCAL_REGION]
        self.store_id = store_id

    def add_user(self, email: str) -> str:
        name = {"GivenName": email.split("@")[0], "FamilyName": "Example"}
        emails = [{"Value": email, "Type": "work", "Primary": True}]
        nones = [None] * 7
        user_id, _ = self.backend.create_user(
            self.store_id, email, name, email, None, None, emails, *nones
        )
        return str(user_id)

    def add_group(self, name: str) -> str:
        group_id, _ = self.backend.create_group(self.store_id, name, None)
        return str(group_id)

    def add_member(self, group_id: str, user_id: str) -> None:
        self.backend.create_group_membership(self.store_id, group_id, {"UserId": user_id})


def add_aws_audiences(db: Path, store: MotoSeeder, first: int, groups: int, members: int) -> None:
    """``groups`` AWS audiences, each its own users and group; the first tenth drifts (one
    member missing, one extra)."""
    drifting = groups // 10
    stale = store.add_user("stale@example.com")
    with sqlite3.connect(db) as conn:
        for n in range(groups):
            g = first + n
            audience = f"aws-{n:04d}"
            emails = [f"user{m:04d}.{g:04d}@example.com" for m in range(members)]
            _vault_audience(conn, g, audience, emails)
            users = [store.add_user(e) for e in emails]
            group_id = store.add_group(audience)
            for user in users[1:] if n < drifting else users:
                store.add_member(group_id, user)
            if n < drifting:
                store.add_member(group_id, stale)
            conn.execute(
                "INSERT INTO sys_infra_state (audience, namespace, provider,"
                " provider_resource_id, provider_resource_type)"
                " VALUES (?, ?, 'aws_identity_center', ?, 'identitystore_group')",
                (audience, f"ns-{g % 10}", group_id),
            )


class Phases(NoEvents):
    """The check's phases, timed: each provider's read (they run side by side), Vault's, the
    evaluation and its write."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def phase(self, scope: str, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


def child_check(db: Path, base_url: str, endpoint: str | None, store_id: str | None) -> None:
    """One full check through the cycle service; prints its figures as JSON."""
    from exporter.cloudflare.client import CloudflareClient
    from exporter.core.provider import Provider
    from exporter.service import assemble
    from exporter.vault import SqliteStore

    providers: list[Provider] = []
    if endpoint is not None and store_id is not None:
        from exporter.aws.identity_store import IdentityStoreClient
        from exporter.aws.local import local_session
        from exporter.aws.provider import IdentityCenter

        aws = IdentityStoreClient(
            identity_store_id=store_id, endpoint_url=endpoint, boto_session=local_session()
        )
        providers.append(IdentityCenter(aws))
    cloudflare = CloudflareClient(
        base_url=base_url, account_id="demo-account", token="demo-token", timeout=120
    )
    phases = Phases()
    services = assemble(SqliteStore(db).open(), cloudflare, providers=providers, events=phases)
    t0 = time.perf_counter()
    snapshot = services.cycle.check_all("bench")
    seconds = time.perf_counter() - t0
    requests = {
        name: {f"{op} {cls}": n for (op, cls), n in sorted(stats.requests.items())}
        for name, stats in services.providers.request_stats().items()
    }
    print(
        json.dumps(
            {
                "seconds": seconds,
                "counts": snapshot.counts(),
                "requests": requests,
                "phases_s": {name: round(seconds, 3) for name, seconds in phases.seconds.items()},
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def moto_latency_ms(store: Any, calls: int = 20) -> dict[str, float]:
    """What one request to moto's server costs here, by operation (median of ``calls``): the
    floor under every AWS figure of this benchmark, which is moto's, not AWS's."""
    from exporter.aws.local import local_session

    client = local_session().client("identitystore", endpoint_url=store.endpoint_url)
    group = next(iter(store.group_names()))
    asks = {
        "ListGroups(1)": lambda: client.list_groups(IdentityStoreId=store.store_id, MaxResults=1),
        "ListUsers(100)": lambda: client.list_users(IdentityStoreId=store.store_id, MaxResults=100),
        "ListGroupMemberships(100)": lambda: client.list_group_memberships(
            IdentityStoreId=store.store_id, GroupId=group, MaxResults=100
        ),
    }
    figures = {}
    for name, ask in asks.items():
        took = []
        for _ in range(calls):
            t0 = time.perf_counter()
            ask()
            took.append(time.perf_counter() - t0)
        figures[name] = round(statistics.median(took) * 1000, 1)
    return figures


def run_child(db: Path, base_url: str, aws: tuple[str, str] | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.aws_mixed", "--child", str(db), "--base-url", base_url]
    if aws is not None:
        command += ["--endpoint", aws[0], "--store-id", aws[1]]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    return {
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "counts": runs[-1]["counts"],
        "requests": runs[-1]["requests"],
        "phases_s": runs[-1]["phases_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--cf", type=int, default=300)
    parser.add_argument("--aws", type=int, default=100)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=Path)
    parser.add_argument("--base-url")
    parser.add_argument("--endpoint")
    parser.add_argument("--store-id")
    args = parser.parse_args()
    if args.child is not None:
        child_check(args.child, args.base_url, args.endpoint, args.store_id)
        return
    from exporter.aws.local import LocalIdentityStore, moto_available

    if not moto_available():
        sys.exit("needs moto's server mode: pip install -e '.[aws]'")
    cf, aws, members = (30, 10, 20) if args.small else (args.cf, args.aws, args.members)
    runs = 1 if args.small else args.runs
    with (
        tempfile.TemporaryDirectory() as tmp,
        CloudflareSimulator(per_page_cap=PAGE_CAP) as sim,
        LocalIdentityStore() as store,
    ):
        alone, mixed = Path(tmp) / "cloudflare.db", Path(tmp) / "mixed.db"
        t0 = time.perf_counter()
        build_world(alone, sim, cf, members, drifting=cf // 10)
        shutil.copy(alone, mixed)
        add_aws_audiences(mixed, MotoSeeder(store.store_id), cf, aws, members)
        seeded = time.perf_counter() - t0
        latency = moto_latency_ms(store)
        baseline = [run_child(alone, sim.base_url, None) for _ in range(runs)]
        aws_side = (store.endpoint_url, store.store_id)
        both = [run_child(mixed, sim.base_url, aws_side) for _ in range(runs)]
    print(
        json.dumps(
            {
                "world": {"cloudflare": cf, "aws": aws, "members": members, "runs": runs},
                "seed_seconds": round(seeded, 1),
                "moto_request_ms": latency,
                "cloudflare_alone": summary(baseline),
                "mixed": summary(both),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
