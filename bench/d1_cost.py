"""A Vault in D1 beside a Vault file, in one run (docs/benchmarks.md, "Vault on D1").

    python -m bench.d1_cost              # full check 1,000 x 1,000 @ 50 ms, notifications, budget
    python -m bench.d1_cost --workerd    # also D1's own rows_read, from workerd (miniflare)
    python -m bench.d1_cost --small      # a quick run (the test suite's smoke check)

The simulated D1 (``exporter/demo/d1_simulator.py``) serves a copy of the world the file
backend reads, beside the simulated Access API (one base URL, one budget), both with the
same latency: every check runs on its own fresh copy, so neither backend meets what the
other wrote. Peaks are each child's own (``check_once.peak_rss_mb``), never the harness's.
Its ``rows_read`` counts rows answered, not rows scanned: D1's own figure
comes from workerd's D1 behind the test gateway (``--workerd``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.simulator import CloudflareSimulator

from .serve_latency import missing
from .serving import ADMIN, AUTH, EXE, free_port
from .world import ADDED, build_world

BUDGET_PER_HOUR = 1200 * 12
FREE_ROWS_READ_PER_DAY = 5_000_000
PAID_ROWS_READ_PER_MONTH = 25_000_000_000


def child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.check_once", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def side_by_side(groups: int, members: int, latency: float, rounds: int) -> dict[str, Any]:
    """The same world, the same simulated Cloudflare: file vs D1, each check in a fresh
    process on its own fresh copy of the Vault (a database no other backend has written)."""
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        world = Path(tmp) / "world.db"
        build_world(world, sim, groups, members, drifting=groups // 10)
        sim.latency_seconds = latency
        file_runs, d1_runs = [], []
        for r in range(rounds):  # interleaved, so both meet the same load
            with _fresh_copy(world, Path(tmp) / f"file-{r}") as db:
                file_runs.append(child(["--db", str(db), "--base-url", sim.base_url]))
            with _fresh_copy(world, Path(tmp) / f"d1-{r}") as db:
                d1 = D1Simulator(db, latency_seconds=latency)
                sim.attach_d1(d1)
                try:
                    d1_runs.append(
                        child(["--d1", d1.database_id, "--base-url", sim.base_url, "--checks", "2"])
                    )
                finally:
                    d1.close()
    steady = [run["runs"][-1] for run in d1_runs]  # a running serve: sizes known
    first = [run["runs"][0] for run in d1_runs]
    page_bytes = d1_runs[0]["page_bytes"]
    member_bytes = steady[0]["member_bytes"]
    return {
        "groups": groups,
        "members": members,
        "latency_ms": latency * 1000,
        "rounds": rounds,
        "file_seconds": _spread([r["seconds"] for r in file_runs]),
        "file_peak_rss_mb": round(max(r["peak_rss_mb"] for r in file_runs), 1),
        "d1_seconds_first_check": _spread([r["seconds"] for r in first]),
        "d1_seconds": _spread([r["seconds"] for r in steady]),
        "d1_peak_rss_mb": round(max(r["peak_rss_mb"] for r in d1_runs), 1),
        "ru_maxrss_mb": {  # what getrusage says: the harness's own peak included (Linux)
            "file": round(max(r["ru_maxrss_mb"] for r in file_runs), 1),
            "d1": round(max(r["ru_maxrss_mb"] for r in d1_runs), 1),
        },
        "d1_seconds_waiting_for_d1": _spread([r["d1_seconds"] for r in steady]),
        "counts_file": file_runs[0]["counts"],
        "counts_d1": steady[0]["counts"],
        "member_bytes": member_bytes,
        "page_bytes": page_bytes,
        "member_pages": steady[0]["member_pages"],
        "member_pages_first_check": first[0]["member_pages"],
        "member_pages_bound": math.ceil(member_bytes / page_bytes) + 1,
        "d1_requests_per_check": steady[0]["d1_requests"],
        "access_requests_per_check": steady[0]["access_requests"],
        "rows_written_per_check": steady[0]["rows_written"],
    }


@contextmanager
def _fresh_copy(world: Path, folder: Path) -> Iterator[Path]:
    """A copy of the built world (its WAL was checkpointed), removed afterwards."""
    folder.mkdir()
    try:
        yield Path(shutil.copy(world, folder / "vault.db"))
    finally:
        shutil.rmtree(folder)


def _spread(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median": round(statistics.median(values), 2),
        "min": round(values[0], 2),
        "max": round(values[-1], 2),
    }


def notification_latency(groups: int, members: int, rounds: int, latency: float) -> dict[str, Any]:
    """``serve`` on D1: a Vault change, vault-api's notification, then /metrics shows it."""
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        d1 = D1Simulator(db, latency_seconds=latency)
        sim.attach_d1(d1)
        sim.latency_seconds = latency
        port = free_port()
        env = {
            **os.environ,
            "VAULT_DRIFT_DATABASE": f"d1://{d1.database_id}",
            "CLOUDFLARE_API_TOKEN": "demo-token",
            "CLOUDFLARE_ACCOUNT_ID": "demo-account",
            "CLOUDFLARE_BASE_URL": sim.base_url,
            "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}",
            "VAULT_DRIFT_CHECK_INTERVAL": "1h",
            "VAULT_DRIFT_LOG_LEVEL": "warning",
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
        }
        process = subprocess.Popen(
            [EXE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url)
            latencies = []
            for r in range(rounds):
                audience, email = f"aud-{r:04d}", f"notified{r}@example.com"
                before = missing(url, audience)
                with sqlite3.connect(db, timeout=10) as conn:  # vault-api's addMember
                    conn.execute(
                        "INSERT INTO iam_user VALUES (?, ?, 'active', ?)", (email, email, ADDED)
                    )
                    conn.execute(
                        "INSERT INTO iam_user_group VALUES (?, ?, ?)", (email, f"g{r}", ADDED)
                    )
                conn.close()
                changed = time.monotonic()
                requests.post(
                    f"{url}/iam/drift/check",
                    json={"audiences": [audience]},
                    headers=AUTH,
                    timeout=10,
                ).raise_for_status()
                while missing(url, audience) == before:
                    if time.monotonic() - changed > 30:
                        raise RuntimeError("the notified change never showed")
                    time.sleep(0.01)
                latencies.append(time.monotonic() - changed)
        finally:
            process.terminate()
            process.wait(timeout=60)
            d1.close()
    latencies.sort()
    return {
        "audiences": groups,
        "members": members,
        "latency_ms": latency * 1000,
        "rounds": rounds,
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)], 3),
        "max_s": round(latencies[-1], 3),
    }


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("serve did not become ready")


def budget(groups: int, members: int, interval_seconds: int) -> dict[str, Any]:
    """Access + D1 requests of real full checks on D1, as a share of the token's budget."""
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        d1 = D1Simulator(db)
        sim.attach_d1(d1)
        run = child(["--d1", d1.database_id, "--base-url", sim.base_url, "--checks", "2"])["runs"][
            -1
        ]
        d1.close()
    per_check = run["access_requests"] + run["d1_requests"]
    per_hour = per_check * 3600 / interval_seconds
    return {
        "groups": groups,
        "members": members,
        "interval_seconds": interval_seconds,
        "access_requests_per_check": run["access_requests"],
        "d1_requests_per_check": run["d1_requests"],
        "requests_per_hour": round(per_hour),
        "budget_share_percent": round(100 * per_hour / BUDGET_PER_HOUR, 2),
    }


def workerd_rows(groups: int, members: int) -> dict[str, Any]:
    """D1's own rows_read and rows_written of full checks, on workerd's D1 (miniflare)."""
    from support.d1_world import DATABASE_ID, load_into_d1, start_workerd

    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        gateway = start_workerd(Path(tmp) / "persist")
        try:
            gateway.control("upstream", {"url": sim.base_url})
            started = time.monotonic()
            load_into_d1(gateway.base_url, db)
            loaded = time.monotonic() - started
            runs = child(["--d1", DATABASE_ID, "--base-url", gateway.base_url, "--checks", "2"])
        finally:
            gateway.process.terminate()
            gateway.process.wait(timeout=30)
    steady = runs["runs"][-1]
    memberships = groups * members
    per_day = steady["rows_read"] * 1440
    return {
        "groups": groups,
        "members": members,
        "memberships": memberships,
        "load_seconds": round(loaded, 1),
        "check_seconds": round(steady["seconds"], 2),
        "member_pages": steady["member_pages"],
        "rows_read_per_check": steady["rows_read"],
        "rows_read_per_membership": round(steady["rows_read"] / memberships, 2),
        "rows_written_per_check": steady["rows_written"],
        "rows_read_per_day_at_1_min": per_day,
        "free_tier_rows_read_per_day": FREE_ROWS_READ_PER_DAY,
        "interval_inside_free_tier_s": math.ceil(
            steady["rows_read"] * 86400 / FREE_ROWS_READ_PER_DAY
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workerd", action="store_true", help="also D1's own rows_read")
    args = parser.parse_args(argv)
    if args.small:
        result = {
            "full_check": side_by_side(20, 20, 0.005, rounds=1),
            "notification": notification_latency(20, 5, rounds=3, latency=0.005),
            "budget": budget(30, 5, 60),
        }
    else:
        result = {
            "full_check": side_by_side(1000, 1000, 0.050, rounds=3),
            "notification": notification_latency(1000, 10, rounds=20, latency=0.050),
            "budget": budget(300, 100, 60),
        }
    if args.workerd:
        sizes = [(20, 5)] if args.small else [(1000, 100), (1000, 1000)]
        result["workerd_rows"] = [workerd_rows(g, m) for g, m in sizes]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
