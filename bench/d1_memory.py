"""Whether a file check's peak depends on what wrote the Vault file last (docs/benchmarks.md,
"Vault on D1": the 216 MB that was the harness's).

    python -m bench.d1_memory            # 1,000 x 1,000, Access and D1 at 50 ms
    python -m bench.d1_memory --small    # a quick run

On copies of one world: a file check on a fresh copy, then again on the file it wrote; a D1
check (the simulator served from this process) on another fresh copy, then two file checks
on the database the D1 simulator wrote. Each child reports its own peak (``VmHWM``) and
``ru_maxrss``, which on Linux includes this process's peak at the spawn; beside them, this
process's resident memory and the database's page size, freelist, statistics and WAL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.simulator import CloudflareSimulator

from .d1_cost import child
from .world import build_world


def harness_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def inspect(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        info: dict[str, Any] = {
            p: conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_size", "page_count", "freelist_count", "journal_mode")
        }
        info["stat_tables"] = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'sqlite_stat%'"
        ).fetchone()[0]
    conn.close()
    wal = Path(f"{db}-wal")
    info["file_mb"] = round(db.stat().st_size / 2**20, 1)
    info["wal_mb"] = round(wal.stat().st_size / 2**20, 1) if wal.exists() else 0.0
    return info


def row(name: str, run: dict[str, Any], db: Path) -> dict[str, Any]:
    return {
        "check": name,
        "own_peak_mb": round(run["peak_rss_mb"], 1),
        "ru_maxrss_mb": round(run["ru_maxrss_mb"], 1),
        "harness_rss_mb": round(harness_rss_mb(), 1),
        "database": inspect(db),
    }


def measure(groups: int, members: int, latency: float) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, CloudflareSimulator(per_page_cap=100) as sim:
        world = Path(tmp) / "world.db"
        build_world(world, sim, groups, members, drifting=groups // 10)
        sim.latency_seconds = latency
        by_file, by_d1 = Path(tmp) / "file.db", Path(tmp) / "d1.db"
        shutil.copy(world, by_file)
        shutil.copy(world, by_d1)
        os.remove(world)
        file_check = ["--db", str(by_file), "--base-url", sim.base_url]
        rows.append(row("file, fresh copy", child(file_check), by_file))
        rows.append(row("file, again (the file wrote it)", child(file_check), by_file))
        d1 = D1Simulator(by_d1, latency_seconds=latency)
        sim.attach_d1(d1)
        try:
            d1_check = ["--d1", d1.database_id, "--base-url", sim.base_url, "--checks", "1"]
            rows.append(row("D1 (simulator), fresh copy", child(d1_check), by_d1))
            after = ["--db", str(by_d1), "--base-url", sim.base_url]
            rows.append(row("file, after the D1 simulator wrote it", child(after), by_d1))
            rows.append(row("file, again", child(after), by_d1))
        finally:
            d1.close()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    rows = measure(20, 20, 0.005) if args.small else measure(1000, 1000, 0.050)
    print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
