"""Effective removal end to end (docs/benchmarks.md, "Session end"): a Vault removal becomes a
leaver whose Access sessions are ended, on the simulated D1 with vault-api's notification and
auto-sync ``remove_only``, through a real ``serve``.

Each round: a member of one audience logs in (one live session in the simulated Cloudflare);
then, timed, vault-api removes them from Vault (a write to the D1 database) and notifies the
exporter (``POST /iam/drift/check`` with the audience), until the simulator has recorded the
``revoke_user`` call for that email. Goal: p95 under 5 s. Then the full check and ``/metrics``
with ``revoke_sessions`` on and off, alternated on the same ``serve`` (the follower must
cost nothing when there is nothing to revoke).

    python -m bench.session_end                  # 100 audiences x 20, 20 ms latency, 30 rounds
    python -m bench.session_end --rounds 50 --latency-ms 50
    python -m bench.session_end --small          # 2 rounds (the test suite's smoke check)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.simulator import CloudflareSimulator

from .serving import AUTH, nearest_rank, serve
from .world import build_world

LOG = os.environ.get("BENCH_SERVE_LOG")  # serve's log (info) goes there when set


def start(sim: CloudflareSimulator, d1: D1Simulator) -> tuple[subprocess.Popen[bytes], str]:
    settings = {
        "VAULT_DRIFT_DATABASE": f"d1://{d1.database_id}",
        "CLOUDFLARE_ACCOUNT_ID": sim.account_id,
        "CLOUDFLARE_BASE_URL": sim.base_url,
        "VAULT_DRIFT_CHECK_INTERVAL": "1h",  # only the notifications drive the checks
    }
    return serve(settings, LOG)


def settings(url: str, **changes: Any) -> None:
    answer = requests.put(f"{url}/iam/drift/settings", json=changes, headers=AUTH, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"settings {changes}: {answer.status_code} {answer.text[:500]}")


def one_round(db: Path, sim: CloudflareSimulator, url: str, r: int) -> tuple[float, float]:
    """One leaver of ``aud-{r}``: seconds from the Vault removal to ``revoke_user`` recorded,
    and to the notification's answer (its check, auto-sync and followers ran before it)."""
    audience, email = f"aud-{r:04d}", f"user0001.{r:04d}@example.com"
    if not sim.login(email):
        raise RuntimeError(f"{email} could not log in")
    removed = time.monotonic()
    with sqlite3.connect(db, timeout=10) as conn:  # vault-api's REMOVE_MEMBER, in D1
        conn.execute("DELETE FROM iam_user_group WHERE user_id = ?", (email,))
    conn.close()
    requests.post(  # vault-api's notification
        f"{url}/iam/drift/check", json={"audiences": [audience]}, headers=AUTH, timeout=30
    ).raise_for_status()
    answered = time.monotonic() - removed
    while email not in sim.sessions.revoked_emails():
        if time.monotonic() - removed > 60:
            raise RuntimeError(f"the sessions of {email} never ended")
        time.sleep(0.01)
    seconds = time.monotonic() - removed
    if sim.sessions.live(email) != 0:
        raise RuntimeError(f"{email} still has a session")
    return seconds, answered


def reasons(url: str, rounds: int) -> dict[str, int]:
    """What the audit says of each round's revocation: every one by auto-sync."""
    found: dict[str, int] = {}
    for r in range(rounds):
        document = requests.get(f"{url}/iam/drift/aud-{r:04d}", headers=AUTH, timeout=30).json()
        for revocation in document["revocations"]:
            key = f"{revocation['reason']}/{revocation['state']}"
            found[key] = found.get(key, 0) + 1
    return found


def compare(sim: CloudflareSimulator, url: str, scrapes: int, checks: int) -> dict[str, Any]:
    """Full checks and /metrics with ``revoke_sessions`` on, off, on, off (so that both meet
    the same load), each phase with a fresh budget: each setting's median check and p95."""
    checked: dict[bool, list[float]] = {True: [], False: []}
    scraped: dict[bool, list[float]] = {True: [], False: []}
    session = requests.Session()
    for enabled in (True, False, True, False):
        settings(url, revoke_sessions=enabled)
        sim.reset_budget()
        for _ in range(checks):
            started = time.perf_counter()
            requests.post(f"{url}/iam/drift/check", json={}, headers=AUTH, timeout=300)
            checked[enabled].append(time.perf_counter() - started)
        for _ in range(scrapes):
            started = time.perf_counter()
            session.get(f"{url}/metrics", timeout=10).raise_for_status()
            scraped[enabled].append((time.perf_counter() - started) * 1000)
    return {
        f"revoke_sessions_{'on' if enabled else 'off'}": {
            "full_check_s": round(statistics.median(checked[enabled]), 3),
            "metrics_p50_ms": round(statistics.median(scraped[enabled]), 1),
            "metrics_p95_ms": round(nearest_rank(scraped[enabled], 0.95), 1),
            "scrapes": len(scraped[enabled]),
        }
        for enabled in (True, False)
    }


def summary(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "rounds": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(nearest_rank(ordered, 0.95), 3),
        "max_s": round(ordered[-1], 3),
        "each_s": [round(x, 3) for x in seconds],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.small:
        args.rounds, args.groups, args.members, args.latency_ms = 2, 10, 5, 5.0
    rounds = min(args.rounds, args.groups)
    latency = args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        db = Path(tmp) / "vault.db"
        build_world(db, sim, args.groups, args.members)
        d1 = D1Simulator(db, latency_seconds=latency)
        sim.attach_d1(d1)
        sim.latency_seconds = latency
        process, url = start(sim, d1)
        try:
            settings(url, auto_sync="remove_only")
            sim.reset_budget()  # one budget (1,200 / 5 min) for the API and D1: each phase its own
            before = sim.request_count
            timed = [one_round(db, sim, url, r) for r in range(rounds)]
            per_round = round((sim.request_count - before) / rounds, 1)
            ended = [t[0] for t in timed]
            print(f"session end p95 {summary(ended)['p95_s']} s", file=sys.stderr, flush=True)
            audit = reasons(url, rounds)
            on_off = compare(sim, url, *((10, 1) if args.small else (150, 2)))
        finally:
            process.terminate()
            process.wait(timeout=60)
            d1.close()
    result = {
        "audiences": args.groups,
        "members": args.members,
        "latency_ms": args.latency_ms,
        "removal_to_sessions_ended": summary(ended),
        "removal_to_notification_answered": summary([t[1] for t in timed]),
        "cloudflare_requests_per_round": per_round,  # the Access API and D1 together
        "revocations": audit,
        **on_off,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
