"""One full check in a fresh process, printing wall time, requests and peak RSS as JSON.

    python -m bench.check_once --db vault.db --base-url URL [--naive]
    python -m bench.check_once --d1 DATABASE_ID --base-url URL [--checks 2]   # Vault in D1

Run as a child of the benchmark so the simulator's memory is not counted. The peak is this
process image's own high-water mark (``VmHWM``): ``ru_maxrss`` is not, on Linux (see
``peak_rss_mb``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from exporter.cloudflare.client import CloudflareClient
from exporter.core.drift import evaluate
from exporter.core.model import DriftMemory
from exporter.core.rules import actual_of
from exporter.service import assemble
from exporter.vault import SqliteStore
from exporter.vault.membership import expected_members, list_audiences


def peak_rss_mb() -> float:
    """This process's peak resident memory since its ``exec``, in MB.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that high-water mark across
    ``fork``/``vfork`` and ``exec``, so a child started by a parent holding 200 MB reports at
    least 200 MB whatever it used itself (the parent's memory at the spawn, the D1
    simulator's page cache among it). ``VmHWM`` in ``/proc/self/status`` belongs to the
    process image alone; where there is no ``/proc``, ``ru_maxrss`` stands in.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def client(base_url: str) -> CloudflareClient:
    return CloudflareClient(
        base_url=base_url, account_id="demo-account", token="demo-token", timeout=120
    )


def engine_check(store: SqliteStore, base_url: str) -> dict[str, int]:
    checker = assemble(store, client(base_url)).checker
    snapshot = checker.check_all("bench")
    return snapshot.counts()


def naive_check(store: SqliteStore, base_url: str) -> dict[str, int]:
    """The seed's loop: per audience, its own Vault query and one GET of its group."""
    cf = client(base_url)
    counts: dict[str, int] = {}
    with store.db.connect() as conn:
        for audience in list_audiences(conn):
            expected = expected_members(conn, [audience.audience])[audience.audience]
            assert audience.group_id is not None
            actual = actual_of(cf.get_group(audience.group_id))
            status = str(evaluate(audience, expected, actual, DriftMemory(), _now()).status)
            counts[status] = counts.get(status, 0) + 1
    return counts


def _now():  # type: ignore[no-untyped-def]
    from exporter.clock import utc_now

    return utc_now()


def d1_checks(database_id: str, base_url: str, checks: int) -> dict[str, object]:
    """Full checks on a Vault in D1: time, requests, pages and rows of each, peak RSS."""
    from exporter.cloudflare.d1 import D1Client
    from exporter.vault.d1 import D1Store

    cf = client(base_url)
    d1 = D1Client(
        base_url=base_url,
        account_id="demo-account",
        database_id=database_id,
        token="demo-token",
        gate=cf.rate_gate,
        stats=cf.stats,
        timeout=120,
    )
    store = D1Store(d1).open()
    checker = assemble(store, cf).checker
    runs = []
    for _ in range(checks):
        before, pages = cf.stats.snapshot(), store.pages_read
        started = time.perf_counter()
        counts = checker.check_all("bench").counts()
        seconds = time.perf_counter() - started
        after = cf.stats.snapshot()
        runs.append(
            {
                "seconds": seconds,
                "counts": counts,
                "d1_requests": sum(after.d1.requests.values()) - sum(before.d1.requests.values()),
                "access_requests": sum(after.requests.values()) - sum(before.requests.values()),
                "member_pages": store.pages_read - pages,
                "member_bytes": store.pager.member_bytes,
                "rows_read": after.d1.rows_read - before.d1.rows_read,
                "rows_written": after.d1.rows_written - before.d1.rows_written,
                "d1_seconds": after.d1.seconds - before.d1.seconds,
            }
        )
    return {
        "runs": runs,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
        "page_bytes": store.pager.page_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    parser.add_argument("--d1", metavar="DATABASE_ID")
    parser.add_argument("--checks", type=int, default=2)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    if args.d1:
        print(json.dumps(d1_checks(args.d1, args.base_url, args.checks)))
        return
    db = SqliteStore(args.db).open()
    started = time.perf_counter()
    counts = (naive_check if args.naive else engine_check)(db, args.base_url)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "ru_maxrss_mb": ru_maxrss_mb(),
                "counts": counts,
            }
        )
    )


if __name__ == "__main__":
    main()
