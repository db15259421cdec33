"""Share of Cloudflare's request budget a running exporter uses, from measured checks.

    python -m bench.budget              # 300 groups, 1-min interval (docs/benchmarks.md)
    python -m bench.budget --small      # a quick run (the test suite's smoke check)

Cloudflare allows 1,200 requests per 5 minutes per token (14,400 an hour), shared with the
dashboard and every other automation. The exporter's full check reads every group through
one paginated listing; the naive approach GETs each group. Cloudflare's maximum ``per_page``
is undocumented, so the listing is measured at several server-side page caps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from exporter.cloudflare.client import CloudflareClient
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import assemble
from exporter.vault import SqliteStore

from .check_once import naive_check
from .world import build_world

BUDGET_PER_HOUR = 1200 * 12  # 1,200 requests per 5 minutes


def requests_per_check(groups: int, page_cap: int, checks: int, naive: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=page_cap) as sim:
        db_path = Path(tmp) / "vault.db"
        build_world(db_path, sim, groups, members=5, drifting=groups // 10)
        db = SqliteStore(db_path).open()
        client = CloudflareClient(
            base_url=sim.base_url, account_id="demo-account", token="demo-token"
        )
        checker = assemble(db, client).checker
        before = sim.request_count
        for _ in range(checks):
            if naive:
                naive_check(db, sim.base_url)
            else:
                checker.check_all("bench")
        return (sim.request_count - before) / checks


def budget(groups: int, interval_seconds: int, page_caps: list[int], checks: int) -> dict[str, Any]:
    checks_per_hour = 3600 / interval_seconds
    rows = []
    for cap in page_caps:
        per_check = requests_per_check(groups, cap, checks, naive=False)
        rows.append(_row(f"checker, page cap {cap}", per_check, checks_per_hour))
    rows.append(
        _row("naive (GET per group)", requests_per_check(groups, 100, 1, True), checks_per_hour)
    )
    return {
        "groups": groups,
        "interval_seconds": interval_seconds,
        "budget_per_hour": BUDGET_PER_HOUR,
        "rows": rows,
    }


def _row(label: str, per_check: float, checks_per_hour: float) -> dict[str, Any]:
    per_hour = per_check * checks_per_hour
    return {
        "approach": label,
        "requests_per_check": round(per_check, 2),
        "requests_per_hour": round(per_hour),
        "budget_share_percent": round(100 * per_hour / BUDGET_PER_HOUR, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.small:
        result = budget(groups=30, interval_seconds=60, page_caps=[25], checks=1)
    else:
        result = budget(groups=300, interval_seconds=60, page_caps=[25, 50, 100, 1000], checks=3)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
