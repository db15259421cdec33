"""Cost of a full check: Cloudflare requests per check vs G, wall time and peak RSS vs naive.

python -m bench.check_cost                 # the figures of docs/benchmarks.md
python -m bench.check_cost --small         # a quick run (the test suite's smoke check)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from exporter.demo.simulator import CloudflareSimulator

from .world import build_world

PAGE_CAP = 100  # the simulator's per_page cap (Cloudflare's is undocumented)


def simulator() -> CloudflareSimulator:
    return CloudflareSimulator(per_page_cap=PAGE_CAP)


def child(db: Path, base_url: str, naive: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.check_once", "--db", str(db), "--base-url", base_url]
    out = subprocess.run(
        command + (["--naive"] if naive else []),
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def requests_per_check(sizes: list[int], members: int) -> list[dict[str, Any]]:
    rows = []
    for groups in sizes:
        with tempfile.TemporaryDirectory() as tmp, simulator() as sim:
            db = Path(tmp) / "vault.db"
            build_world(db, sim, groups, members, drifting=groups // 10)
            counted: dict[str, int] = {}
            for naive in (False, True):
                before = sim.request_count
                child(db, sim.base_url, naive)
                counted["naive" if naive else "checker"] = sim.request_count - before
            rows.append(
                {
                    "groups": groups,
                    "checker": counted["checker"],
                    "naive": counted["naive"],
                    "bound": math.ceil(groups / PAGE_CAP) + 1,
                }
            )
    return rows


def full_check(groups: int, members: int, latency: float, rounds: int) -> dict[str, Any]:
    """The checker ``rounds`` times (each in a fresh process), then the naive loop once."""
    with tempfile.TemporaryDirectory() as tmp, simulator() as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        sim.latency_seconds = latency
        checker = [child(db, sim.base_url, naive=False) for _ in range(rounds)]
        naive = child(db, sim.base_url, naive=True)
    for run in checker:
        same = {k: v for k, v in run["counts"].items() if v} == naive["counts"]
        assert same, (run["counts"], naive["counts"])
    seconds = sorted(run["seconds"] for run in checker)
    median = statistics.median(seconds)
    return {
        "groups": groups,
        "members": members,
        "latency_ms": latency * 1000,
        "engine_rounds": rounds,
        "engine_seconds_median": round(median, 2),
        "engine_seconds_min": round(seconds[0], 2),
        "engine_seconds_max": round(seconds[-1], 2),
        "naive_seconds": round(naive["seconds"], 2),
        "speedup": round(naive["seconds"] / median, 1),
        "engine_peak_rss_mb": round(max(run["peak_rss_mb"] for run in checker), 1),
        "naive_peak_rss_mb": round(naive["peak_rss_mb"], 1),
        "counts": checker[0]["counts"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.small:
        result = {
            "requests": requests_per_check([10, 120], 5),
            "full_check": full_check(20, 20, 0.005, rounds=2),
        }
    else:
        result = {
            "requests": requests_per_check([10, 100, 300, 1000], 20),
            "full_check": full_check(1000, 1000, 0.050, rounds=5),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
