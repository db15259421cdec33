"""A manual edit in Cloudflare -> /metrics, through the change feed (docs/benchmarks.md,
"Change feed"): ``serve`` at 300 groups with the default settings, edits made in the
simulated dashboard at random moments of the poll's cycle, seen by the poll (goal: p95 within
``feed_interval_seconds`` + 5 s) and by a Logpush delivery (goal: p95 under 5 s).

    python -m bench.feed_latency                 # 300 groups, 40 polled rounds, 40 pushed
    python -m bench.feed_latency --small         # a quick run

Each round also says when the simulated Cloudflare answered the feed's listings and the GET
of the edited group, relative to the edit (a watcher thread reads the simulator's request
log every 20 ms): an edit seen late is then explained (the listing that missed it, a check
that waited) rather than only counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_logpush import LogpushSender

from .serving import nearest_rank, serve
from .world import build_world

LOGPUSH = "bench-logpush-token-0123456789"
LOG = os.environ.get("BENCH_SERVE_LOG")  # serve's log (info) goes there when set


def extra(url: str, audience: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("vault_drift_audience_members_extra{") and f'"{audience}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def start(db: Path, sim: CloudflareSimulator) -> tuple[subprocess.Popen[bytes], str]:
    settings = {
        "VAULT_DRIFT_DATABASE": str(db),
        "CLOUDFLARE_ACCOUNT_ID": "demo-account",
        "CLOUDFLARE_BASE_URL": sim.base_url,
        "VAULT_DRIFT_LOGPUSH_TOKEN": LOGPUSH,
    }
    return serve(settings, LOG)


class RequestWatch:
    """When the simulator answered each audit-log listing and each group GET (monotonic)."""

    def __init__(self, sim: CloudflareSimulator) -> None:
        self.sim = sim
        self.seen: list[tuple[float, str]] = []  # (when, path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        done = 0
        while not self._stop.wait(0.02):
            log = self.sim.request_log
            now = time.monotonic()
            self.seen += [(now, path) for _, path, _ in log[done:]]
            done = len(log)

    def around(self, edited: float, group_id: str) -> dict[str, object]:
        polls = [at - edited for at, path in self.seen if path.endswith("/audit_logs")]
        gets = [at - edited for at, path in self.seen if path.endswith(f"/groups/{group_id}")]
        before = [t for t in polls if t <= 0]
        return {
            "last_poll_before_s": round(before[-1], 2) if before else None,
            "polls_after_s": [round(t, 2) for t in polls if t > 0][:3],
            "group_gets_after_s": [round(t, 2) for t in gets if t > 0][:3],
        }


def edit_and_wait(
    sim: CloudflareSimulator, url: str, audience: str, n: int, watch: RequestWatch
) -> dict[str, object]:
    group = next(g for g in sim.groups() if g["name"] == audience)
    before = extra(url, audience)
    include = [*group["include"], {"email": {"email": f"friend{n}@example.org"}}]
    sim.set_include(group["id"], include, by="jane@corp.example")
    edited = time.monotonic()
    while extra(url, audience) == before:
        if time.monotonic() - edited > 120:
            raise RuntimeError(f"the edit of {audience} never showed")
        time.sleep(0.05)
    seen = round(time.monotonic() - edited, 2)
    time.sleep(0.05)  # the watcher's next look
    return {"audience": audience, "seen_s": seen, **watch.around(edited, group["id"])}


def summary(rounds: list[dict[str, object]]) -> dict[str, object]:
    latencies = [float(r["seen_s"]) for r in rounds]  # type: ignore[arg-type]
    ordered = sorted(latencies)
    return {
        "rounds": len(ordered),
        "median_s": round(statistics.median(ordered), 2),
        "p95_s": round(nearest_rank(ordered, 0.95), 2),
        "max_s": round(ordered[-1], 2),
        "each": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--polled", type=int, default=40)
    parser.add_argument("--pushed", type=int, default=40)
    args = parser.parse_args()
    groups, polled, pushed = (20, 2, 3) if args.small else (300, args.polled, args.pushed)
    rng = random.Random(23)
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, groups, 20)
        process, url = start(db, sim)
        try:
            with RequestWatch(sim) as watch:
                time.sleep(6)  # the feed's first poll
                poll = rounds(sim, url, watch, range(polled), rng, 30)
                sender = LogpushSender(f"{url}/iam/drift/feed/logpush", f"Bearer {LOGPUSH}")
                sim.audit.logpush = sender
                sender.start()
                push = rounds(sim, url, watch, range(polled, polled + pushed), rng, 2)
                sim.audit.logpush = None
                sender.stop()
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(json.dumps({"groups": groups, "polled": summary(poll), "logpush": summary(push)}))


def rounds(
    sim: CloudflareSimulator,
    url: str,
    watch: RequestWatch,
    numbers: range,
    rng: random.Random,
    spread: float,
) -> list[dict[str, object]]:
    """One edit per round, each after a random pause (anywhere in the poll's cycle)."""
    done = []
    for n in numbers:
        time.sleep(rng.uniform(0, spread))
        done.append(edit_and_wait(sim, url, f"aud-{n:04d}", n, watch))
        print(f"round {n}: {json.dumps(done[-1])}", file=sys.stderr, flush=True)
    return done


if __name__ == "__main__":
    main()
