"""Before/after in one run: another source tree (e.g. ``git archive <commit>``) against this one.

python -m bench.compare_trees --base /tmp/base-tree            # the figures of docs/benchmarks.md
python -m bench.compare_trees --base /tmp/base-tree --small    # a quick run

The machine is shared, so the two trees are interleaved round by round (the order swapped
every round) in one run, each check in a fresh process (bench/check_once.py run from its tree),
each tree on its own copy of one Vault file, against one simulated Cloudflare:

1. full checks, 1,000 audiences x 1,000 members at 50 ms a request, after a first check;
2. the same, in checks that record 100 revocations (the drifting groups lose their stale
   member; it comes back between rounds, unmeasured);
3. ``/metrics`` of two ``serve`` processes (1,000 audiences x 10), scrapes interleaved, and
   each process's resident memory once its scrapes are done.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from exporter.demo.simulator import CloudflareSimulator

from .serve_latency import start_serve
from .world import build_world

HERE = str(Path(__file__).resolve().parents[1])
STALE = "stale@example.com"


def check_once(tree: str, db: Path, base_url: str) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "bench.check_once", "--db", str(db), "--base-url", base_url],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": tree},
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return float(json.loads(done.stdout)["seconds"])


def set_stale(sim: CloudflareSimulator, present: bool, drifting: int) -> None:
    """The first ``drifting`` groups carry (or lose) their extra member."""
    for group in sim.groups():
        if int(group["name"].split("-")[1]) >= drifting:
            continue
        include = [r for r in group["include"] if r.get("email", {}).get("email") != STALE]
        sim.set_include(
            group["id"], [*include, {"email": {"email": STALE}}] if present else include
        )


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "all": [round(v, 2) for v in values],
    }


def full_checks(trees: dict[str, str], groups: int, members: int, rounds: int) -> dict[str, Any]:
    drifting = groups // 10
    steady: dict[str, list[float]] = {name: [] for name in trees}
    revoking: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        world = Path(tmp) / "world.db"
        build_world(world, sim, groups, members, drifting=drifting)
        dbs = {name: Path(tmp) / f"{name}.db" for name in trees}
        for db in dbs.values():
            shutil.copy(world, db)
        sim.latency_seconds = 0.050
        for name, tree in trees.items():  # the first check builds the drift memory
            check_once(tree, dbs[name], sim.base_url)
        names = list(trees)
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                steady[name].append(check_once(trees[name], dbs[name], sim.base_url))
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            set_stale(sim, False, drifting)
            for name in order:
                revoking[name].append(check_once(trees[name], dbs[name], sim.base_url))
            set_stale(sim, True, drifting)
            for name in order:
                check_once(trees[name], dbs[name], sim.base_url)
    return {
        "groups": groups,
        "members": members,
        "steady": {name: summary(v) for name, v in steady.items()},
        f"revoking_{drifting}": {name: summary(v) for name, v in revoking.items()},
    }


def metrics_latency(trees: dict[str, str], groups: int, batches: int, size: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in trees}
    body: dict[str, int] = {}
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        world = Path(tmp) / "world.db"
        build_world(world, sim, groups, 10, drifting=groups // 10)
        served = {}
        try:
            for name, tree in trees.items():
                db = Path(tmp) / f"{name}.db"
                shutil.copy(world, db)
                os.environ["PYTHONPATH"] = tree  # start_serve passes os.environ on
                served[name] = start_serve(db, sim, "30s")
            os.environ.pop("PYTHONPATH", None)
            sessions = {name: requests.Session() for name in trees}
            names = list(trees)
            for b in range(batches):
                for name in names if b % 2 == 0 else names[::-1]:
                    for _ in range(size):
                        started = time.perf_counter()
                        answer = sessions[name].get(f"{served[name][1]}/metrics", timeout=120)
                        answer.raise_for_status()
                        times[name].append((time.perf_counter() - started) * 1000)
                        body[name] = len(answer.content)
            for name, (process, _) in served.items():
                rss[name] = psutil.Process(process.pid).memory_info().rss / 2**20
        finally:
            os.environ.pop("PYTHONPATH", None)
            for process, _ in served.values():
                process.terminate()
                process.wait(timeout=60)
    result: dict[str, Any] = {"audiences": groups}
    for name, values in times.items():
        values.sort()
        result[name] = {
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(values[int(len(values) * 0.95) - 1], 1),
            "scrapes": len(values),
            "bytes": body[name],
            "serve_rss_mb": round(rss[name], 1),
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the other source tree (its root)")
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    trees = {"base": str(Path(args.base).resolve()), "this": HERE}
    if args.small:
        result = {
            "metrics": metrics_latency(trees, 20, 2, 5),
            "full_check": full_checks(trees, 20, 20, 2),
        }
    else:
        result = {
            "metrics": metrics_latency(trees, 1000, 10, 50),
            "full_check": full_checks(trees, 1000, 1000, 5),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
