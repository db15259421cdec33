"""A manual edit in Cloudflare -> /metrics, through the change feed (docs/benchmarks.md,
"Change feed"): ``serve`` at 300 groups with the default settings, edits made in the
simulated dashboard at random moments of the poll's cycle, seen by the poll (goal: p95 within
``feed_interval_seconds`` + 5 s) and by a Logpush delivery (goal: p95 under 5 s).

    python -m bench.feed_latency                 # 300 groups, 8 polled rounds, 20 pushed
    python -m bench.feed_latency --small         # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_logpush import LogpushSender

from .serve_latency import ADMIN, EXE, free_port
from .world import build_world

LOGPUSH = "bench-logpush-token-0123456789"
LOG = os.environ.get("BENCH_SERVE_LOG")  # serve's log (info) goes there when set


def extra(url: str, audience: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("vault_drift_audience_members_extra{") and f'"{audience}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def start(db: Path, sim: CloudflareSimulator) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "VAULT_DRIFT_DATABASE": str(db),
        "CLOUDFLARE_API_TOKEN": "demo-token",
        "CLOUDFLARE_ACCOUNT_ID": "demo-account",
        "CLOUDFLARE_BASE_URL": sim.base_url,
        "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}",
        "VAULT_DRIFT_LOG_LEVEL": "info" if LOG else "warning",
        "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
        "VAULT_DRIFT_LOGPUSH_TOKEN": LOGPUSH,
    }
    log = open(LOG, "ab") if LOG else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([EXE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("serve did not become ready")


def edit_and_wait(sim: CloudflareSimulator, url: str, audience: str, n: int) -> float:
    group = next(g for g in sim.groups() if g["name"] == audience)
    before = extra(url, audience)
    include = [*group["include"], {"email": {"email": f"friend{n}@example.org"}}]
    sim.set_include(group["id"], include, by="jane@corp.example")
    edited = time.monotonic()
    while extra(url, audience) == before:
        if time.monotonic() - edited > 120:
            raise RuntimeError(f"the edit of {audience} never showed")
        time.sleep(0.05)
    return time.monotonic() - edited


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rounds": len(ordered),
        "median_s": round(statistics.median(ordered), 2),
        "p95_s": round(ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)], 2),
        "max_s": round(ordered[-1], 2),
        "each_s": [round(x, 2) for x in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    groups, polled, pushed = (20, 2, 3) if args.small else (300, 8, 20)
    rng = random.Random(23)
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, 20)
        process, url = start(db, sim)
        try:
            time.sleep(6)  # the feed's first poll
            poll = []
            for n in range(polled):
                time.sleep(rng.uniform(0, 30))  # anywhere in the poll's cycle
                poll.append(edit_and_wait(sim, url, f"aud-{n:04d}", n))
            print(f"edit {n} seen after {poll[-1]:.1f}s", file=sys.stderr, flush=True)
            sender = LogpushSender(f"{url}/iam/drift/feed/logpush", f"Bearer {LOGPUSH}")
            sim.audit.logpush = sender
            sender.start()
            push = []
            for n in range(pushed):
                time.sleep(rng.uniform(0, 2))
                push.append(edit_and_wait(sim, url, f"aud-{polled + n:04d}", polled + n))
            sim.audit.logpush = None
            sender.stop()
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(json.dumps({"groups": groups, "polled": summary(poll), "logpush": summary(push)}))


if __name__ == "__main__":
    main()
