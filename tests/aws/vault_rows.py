"""Audiences of any provider added to a sample Vault file, as vault-api would write them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from support import T0

from exporter.demo.sample import add_member


def add_audience(
    database: Path,
    audience: str,
    provider: str,
    group_id: str | None,
    members: Iterable[str],
    namespace: str = "finance",
) -> None:
    """An application granting ``audience`` to a group of ``members``, and its
    ``sys_infra_state`` row naming ``provider`` (``group_id`` None: pending)."""
    group, org = f"g-{audience}", f"org-{audience}"
    resource_type = "identitystore_group" if provider == "aws_identity_center" else None
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO iam_organization (id, name) VALUES (?, ?)", (org, namespace))
        conn.execute(
            "INSERT INTO iam_group (id, organization_id, name) VALUES (?, ?, ?)",
            (group, org, audience),
        )
        conn.execute(
            "INSERT INTO iam_application (id, organization_id, name, audiences)"
            " VALUES (?, ?, ?, ?)",
            (f"app-{audience}", org, audience, json.dumps([audience])),
        )
        for email in members:
            add_member(conn, email, group, T0)
        conn.execute(
            "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id,"
            " provider_resource_type, sync_status) VALUES (?, ?, ?, ?, ?, 'pending')",
            (audience, namespace, provider, group_id, resource_type),
        )


def group_id_of(database: Path, audience: str) -> str | None:
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT provider_resource_id FROM sys_infra_state WHERE audience = ?", (audience,)
        ).fetchone()
    return row[0] if row else None
