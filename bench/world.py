"""A large world for benchmarks: G audiences x M members in Vault and in the simulator."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from exporter.demo.sample import create_schema
from exporter.demo.simulator import CloudflareSimulator

ADDED = "2026-11-01T00:00:00Z"


def build_world(
    path: Path, simulator: CloudflareSimulator, groups: int, members: int, drifting: int = 0
) -> None:
    """Every audience has its own organisation, application, group and users.

    The first ``drifting`` audiences miss one member in Cloudflare and carry one extra.
    """
    create_schema(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        for g in range(groups):
            audience = f"aud-{g:04d}"
            emails = [f"user{m:04d}.{g:04d}@example.com" for m in range(members)]
            _vault_audience(conn, g, audience, emails)
            cloudflare = [*emails[1:], "stale@example.com"] if g < drifting else emails
            group_id = simulator.add_group(audience, [{"email": {"email": e}} for e in cloudflare])
            conn.execute(
                "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id)"
                " VALUES (?, ?, 'cloudflare_access', ?)",
                (audience, f"ns-{g % 10}", group_id),
            )
    with sqlite3.connect(path) as conn:  # vault-api commits small; its WAL is never 200 MB
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _vault_audience(conn: sqlite3.Connection, g: int, audience: str, emails: list[str]) -> None:
    conn.execute("INSERT INTO iam_organization VALUES (?, ?)", (f"o{g}", f"org {g}"))
    conn.execute("INSERT INTO iam_group VALUES (?, ?, ?)", (f"g{g}", f"o{g}", audience))
    conn.execute(
        "INSERT INTO iam_application VALUES (?, ?, ?, ?)",
        (f"a{g}", f"o{g}", audience, json.dumps([audience])),
    )
    conn.executemany(
        "INSERT INTO iam_user (id, email, status, created_at) VALUES (?, ?, 'active', ?)",
        [(e, e, ADDED) for e in emails],
    )
    conn.executemany(
        "INSERT INTO iam_user_group VALUES (?, ?, ?)", [(e, f"g{g}", ADDED) for e in emails]
    )
