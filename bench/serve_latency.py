"""The running exporter: change -> /metrics latency, /metrics p95, RSS over many cycles.

python -m bench.serve_latency            # the figures of docs/benchmarks.md
python -m bench.serve_latency --small    # a quick run (the test suite's smoke check)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from exporter.demo.simulator import CloudflareSimulator

from .serving import AUTH, serve
from .world import ADDED, build_world


def start_serve(
    db: Path, sim: CloudflareSimulator, interval: str
) -> tuple[subprocess.Popen[bytes], str]:
    return serve(
        {
            "VAULT_DRIFT_DATABASE": str(db),
            "CLOUDFLARE_ACCOUNT_ID": "demo-account",
            "CLOUDFLARE_BASE_URL": sim.base_url,
            "VAULT_DRIFT_CHECK_INTERVAL": interval,
        }
    )


def missing(url: str, audience: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("vault_drift_audience_members_missing{") and f'"{audience}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def change_latency(db: Path, url: str, rounds: int) -> list[float]:
    latencies = []
    for r in range(rounds):
        audience = f"aud-{r:04d}"
        before = missing(url, audience)
        email = f"newcomer{r}@example.com"
        with sqlite3.connect(db, timeout=10) as conn:
            conn.execute("INSERT INTO iam_user VALUES (?, ?, 'active', ?)", (email, email, ADDED))
            conn.execute("INSERT INTO iam_user_group VALUES (?, ?, ?)", (email, f"g{r}", ADDED))
        changed = time.monotonic()
        while missing(url, audience) == before:
            if time.monotonic() - changed > 60:
                raise RuntimeError("the change never showed")
            time.sleep(0.05)
        latencies.append(time.monotonic() - changed)
    return latencies


def metrics_p95(url: str, scrapes: int) -> dict[str, float]:
    times = []
    session = requests.Session()
    for _ in range(scrapes):
        started = time.perf_counter()
        session.get(f"{url}/metrics", timeout=10).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "scrapes": scrapes,
    }


def rss_over_cycles(url: str, pid: int, cycles: int) -> list[float]:
    """RSS after each of ``cycles`` full checks forced back to back (120 = 1 h of 30 s checks)."""
    process = psutil.Process(pid)
    session = requests.Session()
    readings = []
    for _ in range(cycles):
        answer = session.post(f"{url}/iam/drift/check", json={}, headers=AUTH, timeout=120)
        answer.raise_for_status()
        readings.append(round(process.memory_info().rss / 2**20, 1))
    return readings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    groups, members = (20, 5) if args.small else (1000, 10)
    cycles = 3 if args.small else 120
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, members, drifting=groups // 10)
        process, url = start_serve(db, sim, "30s")
        try:
            latencies = change_latency(db, url, 3 if args.small else 10)
            p95 = metrics_p95(url, 50 if args.small else 500)
            rss = rss_over_cycles(url, process.pid, cycles)
        finally:
            process.terminate()
            process.wait(timeout=60)
    result = {
        "audiences": groups,
        "change_to_metrics_seconds": {
            "median": round(statistics.median(latencies), 2),
            "max": round(max(latencies), 2),
        },
        "metrics": p95,
        "rss_mb": {"after_first": rss[0], "after_last": rss[-1], "max": max(rss), "cycles": cycles},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
