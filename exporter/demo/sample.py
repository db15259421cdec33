"""The demo's sample world: a Vault database and the matching simulated Cloudflare groups.

It has the seed's cases: an audience in sync, one drifting with missing and extra members,
one whose group carries non-email rules, one pending (no group yet), one whose group is gone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.core.times import format_time
from exporter.demo.simulator import CloudflareSimulator


@dataclass(frozen=True)
class SampleAudience:
    audience: str
    namespace: str
    members: tuple[tuple[str, float], ...]  # (email, added hours ago)
    cloudflare: tuple[str, ...] | None  # emails in the group; None = pending (no group)
    other_rules: tuple[dict[str, Any], ...] = ()
    group_missing: bool = False  # sys_infra_state names a group Cloudflare does not have


SAMPLE = (
    SampleAudience(
        "lms-instructors",
        "lms",
        (
            ("bob@example.com", 2),
            ("alice@example.com", 26),
            ("dana@example.com", 400),
            ("erin@example.com", 380),
            ("frank@example.com", 300),
            ("grace@example.com", 200),
            ("heidi@example.com", 150),
            ("ivan@example.com", 90),
        ),
        (
            "dana@example.com",
            "Erin@Example.com",
            "frank@example.com",
            "grace@example.com",
            "heidi@example.com",
            "ivan@example.com",
            "olduser@example.com",
        ),
    ),
    SampleAudience(
        "administrators",
        "admin",
        (("root@example.com", 900), ("ops@example.com", 700)),
        ("root@example.com", "ops@example.com"),
    ),
    SampleAudience(
        "developers",
        "dev",
        tuple((f"dev{i}@example.com", 100 + i) for i in range(1, 6)),
        tuple(f"dev{i}@example.com" for i in range(1, 6)),
        other_rules=(
            {"email_domain": {"domain": "contractors.example.com"}},
            {"ip": {"ip": "10.0.0.0/8"}},
        ),
    ),
    SampleAudience(
        "sales-team",
        "sales",
        (("sam@example.com", 50), ("sue@example.com", 40)),
        ("sam@example.com",),
        group_missing=True,
    ),
    SampleAudience(
        "lms-viewer",
        "lms",
        (("student1@example.com", 10), ("student2@example.com", 5)),
        None,
    ),
)


def create_schema(path: Path) -> None:
    ddl = resources.files("exporter").joinpath("sql/vault-schema.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)


def build_sample(path: Path, simulator: CloudflareSimulator, now: datetime) -> None:
    """Write the sample Vault DB at ``path`` and its groups into ``simulator``."""
    create_schema(path)
    with sqlite3.connect(path) as conn:
        for index, item in enumerate(SAMPLE):
            _add_vault_audience(conn, index, item, now)
            group_id = _add_group(simulator, item)
            conn.execute(
                "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id,"
                " provider_resource_type, sync_status) VALUES (?, ?, 'cloudflare_access', ?,"
                " 'access_group', 'pending')",
                (item.audience, item.namespace, group_id),
            )
        # A suspended user and a look-alike audience that must not match ("lms" != "lms-*").
        conn.execute(
            "INSERT INTO iam_user (id, email, status) VALUES ('u-carol', 'carol@example.com',"
            " 'suspended')"
        )
        conn.execute(
            "INSERT INTO iam_user_group (user_id, group_id, created_at) VALUES"
            " ('u-carol', 'g-0', ?)",
            (format_time(now),),
        )
        conn.execute("INSERT INTO iam_organization (id, name) VALUES ('org-9', 'legacy')")
        conn.execute(
            "INSERT INTO iam_application (id, organization_id, name, audiences) VALUES"
            " ('app-legacy', 'org-9', 'Legacy LMS', '[\"lms\"]')"
        )


def _add_vault_audience(
    conn: sqlite3.Connection, index: int, item: SampleAudience, now: datetime
) -> None:
    org, group = f"org-{index}", f"g-{index}"
    conn.execute("INSERT INTO iam_organization (id, name) VALUES (?, ?)", (org, item.namespace))
    conn.execute(
        "INSERT INTO iam_group (id, organization_id, name) VALUES (?, ?, ?)",
        (group, org, item.audience.replace("-", " ").title()),
    )
    conn.execute(
        "INSERT INTO iam_application (id, organization_id, name, audiences) VALUES (?, ?, ?, ?)",
        (f"app-{index}", org, item.audience.title(), json.dumps([item.audience])),
    )
    for email, hours in item.members:
        add_member(conn, email, group, now - timedelta(hours=hours))


def add_member(conn: sqlite3.Connection, email: str, group: str, at: datetime) -> None:
    user_id = f"u-{email.split('@')[0]}"
    conn.execute(
        "INSERT OR IGNORE INTO iam_user (id, email, status, created_at) VALUES (?, ?, 'active', ?)",
        (user_id, email, format_time(at)),
    )
    conn.execute(
        "INSERT OR IGNORE INTO iam_user_group (user_id, group_id, created_at) VALUES (?, ?, ?)",
        (user_id, group, format_time(at)),
    )


def _add_group(simulator: CloudflareSimulator, item: SampleAudience) -> str | None:
    if item.cloudflare is None:
        return None
    if item.group_missing:
        return "9f1c7e2a-0000-4000-8000-00000000dead"
    include = [*item.other_rules, *({"email": {"email": e}} for e in item.cloudflare)]
    return simulator.add_group(item.audience, include)
