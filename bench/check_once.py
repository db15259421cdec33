"""One full check in a fresh process, printing wall time, requests and peak RSS as JSON.

    python -m bench.check_once --db vault.db --base-url URL [--naive]

Run as a child of the benchmark so the simulator's memory is not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from exporter.cloudflare.client import CloudflareClient
from exporter.core.drift import compact, evaluate
from exporter.core.model import DriftMemory
from exporter.service import assemble
from exporter.vault import SqliteStore
from exporter.vault.membership import expected_members, list_audiences


def client(base_url: str) -> CloudflareClient:
    return CloudflareClient(
        base_url=base_url, account_id="demo-account", token="demo-token", timeout=120
    )


def engine_check(store: SqliteStore, base_url: str) -> dict[str, int]:
    checker = assemble(store, client(base_url)).checker
    snapshot = checker.check_all("bench", timeout=600)
    return snapshot.counts()


def naive_check(store: SqliteStore, base_url: str) -> dict[str, int]:
    """The seed's loop: per audience, its own Vault query and one GET of its group."""
    cf = client(base_url)
    counts: dict[str, int] = {}
    with store.db.connect() as conn:
        for audience in list_audiences(conn):
            expected = expected_members(conn, [audience.audience])[audience.audience]
            assert audience.group_id is not None
            actual = compact(cf.get_group(audience.group_id))
            status = str(evaluate(audience, expected, actual, DriftMemory(), _now()).status)
            counts[status] = counts.get(status, 0) + 1
    return counts


def _now():  # type: ignore[no-untyped-def]
    from exporter.clock import utc_now

    return utc_now()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    db = SqliteStore(args.db).open()
    started = time.perf_counter()
    counts = (naive_check if args.naive else engine_check)(db, args.base_url)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kib / 1024, "counts": counts}))


if __name__ == "__main__":
    main()
