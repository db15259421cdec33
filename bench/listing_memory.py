"""Peak memory of a full check at Cloudflare's limits, and the time of a large one.

    python -m bench.listing_memory                      # this tree only
    python -m bench.listing_memory --against DIR        # also DIR's code, in the same run
    python -m bench.listing_memory --small              # a quick run

Two worlds, each check in a fresh process (``bench/check_once.py``) with the default page
size (the client asks for 1,000 groups a page):

- 300 groups x 1,000 members, the simulator serving up to 1,000 a page (the whole account
  in one page), then 100 a page (three pages). The peak RSS used to grow with the page
  Cloudflare serves;
- 1,000 x 1,000 at 50 ms a request, the simulator serving 100 a page: the full check of
  ``bench.check_cost``, timed.

With ``--against DIR`` (a checkout of another commit, e.g. ``git worktree add``), every
round runs DIR's check then this tree's, alternately, against the same simulator: the two
share the machine's load, which matters on a shared host.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from exporter.demo.simulator import CloudflareSimulator

from .world import build_world

HERE = Path(__file__).resolve().parents[1]


def check(tree: Path, db: Path, base_url: str) -> dict[str, Any]:
    """One full check with ``tree``'s code (``-m`` puts the working directory first)."""
    command = [sys.executable, "-m", "bench.check_once", "--db", str(db), "--base-url", base_url]
    out = subprocess.run(
        command, cwd=tree, capture_output=True, text=True, check=True, timeout=1800
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def measure(
    trees: dict[str, Path], groups: int, members: int, page_cap: int, latency: float, rounds: int
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=page_cap) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        sim.latency_seconds = latency
        for _ in range(rounds):
            for name, tree in trees.items():
                runs[name].append(check(tree, db, sim.base_url))
    result: dict[str, Any] = {
        "groups": groups,
        "members": members,
        "page_cap": page_cap,
        "latency_ms": latency * 1000,
        "rounds": rounds,
    }
    for name, checks in runs.items():
        seconds = sorted(run["seconds"] for run in checks)
        rss = sorted(run["peak_rss_mb"] for run in checks)
        result[name] = {
            "seconds_median": round(statistics.median(seconds), 2),
            "seconds_min": round(seconds[0], 2),
            "seconds_max": round(seconds[-1], 2),
            "peak_rss_mb_median": round(statistics.median(rss), 1),
            "peak_rss_mb_max": round(rss[-1], 1),
            "counts": checks[0]["counts"],
        }
    counts = {name: result[name]["counts"] for name in runs}
    assert len({json.dumps(c, sort_keys=True) for c in counts.values()}) == 1, counts
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    args = parser.parse_args(argv)
    trees = {"before": args.against.resolve()} if args.against else {}
    trees["this"] = HERE
    if args.small:
        result = {
            "one_page": measure(trees, 30, 20, 1000, 0.0, rounds=1),
            "three_pages": measure(trees, 30, 20, 10, 0.0, rounds=1),
            "large": measure(trees, 20, 20, 10, 0.005, rounds=2),
        }
    else:
        result = {
            "one_page": measure(trees, 300, 1000, 1000, 0.0, rounds=5),
            "three_pages": measure(trees, 300, 1000, 100, 0.0, rounds=5),
            "large": measure(trees, 1000, 1000, 100, 0.050, rounds=5),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
