"""Failover time of two ``serve --standby`` on one simulated D1 (docs/benchmarks.md,
"Failover"): from the leader's death to the new leader's first check on ``/metrics``.

    python -m bench.failover                 # the default 60 s lease: 1 kill -9, 3 SIGTERM
    python -m bench.failover --lease 10s --kills 3 --terms 3

Goals: under 75 s after kill -9 (the 60 s lease, one 5 s read, the first check), under
10 s after SIGTERM (the lease is given back; one 5 s read, the first check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from exporter.clock import utc_now
from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator

from .serving import EXE, free_port

DATABASE_ID = "00000000-0000-4000-8000-0000000000d1"
FIRST_CHECK = re.compile(r"^vault_drift_last_check_success_timestamp_seconds ", re.MULTILINE)


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**env, "VAULT_DRIFT_LISTEN": self.url.removeprefix("http://")}
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [EXE, "serve", "--standby"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def answering(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def checked(self) -> bool:
        """The leader's first check is on /metrics (a standby has no such series)."""
        try:
            return bool(FIRST_CHECK.search(requests.get(f"{self.url}/metrics", timeout=2).text))
        except requests.RequestException:
            return False


def wait(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError


def run(lease: str, kills: int, terms: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"kill -9": [], "SIGTERM": []}
    with tempfile.TemporaryDirectory() as workdir, CloudflareSimulator() as simulator:
        database = Path(workdir) / "vault.db"
        build_sample(database, simulator, utc_now())
        d1 = D1Simulator(database, database_id=DATABASE_ID)
        simulator.attach_d1(d1)
        env = {
            **os.environ,
            "VAULT_DRIFT_DATABASE": f"d1://{DATABASE_ID}",
            "CLOUDFLARE_API_TOKEN": "demo-token",
            "CLOUDFLARE_ACCOUNT_ID": simulator.account_id,
            "CLOUDFLARE_BASE_URL": simulator.base_url,
            "VAULT_DRIFT_D1_LEASE": lease,
        }
        log = Path(workdir) / "serve.log"
        replicas = [Replica(env, log), Replica(env, log)]
        try:
            for how, rounds in (("SIGTERM", terms), ("kill -9", kills)):
                for _ in range(rounds):
                    wait(lambda: any(r.checked() for r in replicas), 120)
                    [leader] = [r for r in replicas if r.checked()]
                    [standby] = [r for r in replicas if r is not leader]
                    wait(standby.answering, 120)  # a replica started in the last round
                    time.sleep(1)
                    sig = signal.SIGKILL if how == "kill -9" else signal.SIGTERM
                    leader.process.send_signal(sig)
                    figures[how].append(round(wait(standby.checked, 180), 1))
                    leader.process.wait(timeout=60)
                    replicas[replicas.index(leader)] = Replica(env, log)
                    print(how, figures[how][-1], "s", flush=True)
        finally:
            for replica in replicas:
                replica.process.kill()
                replica.process.wait(timeout=30)
            d1.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lease", default="60s")
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--terms", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"lease": args.lease, **run(args.lease, args.kills, args.terms)}))


if __name__ == "__main__":
    main()
