"""The demo's AWS audience: moto's identity store on loopback, when moto is installed.

``aws-payroll`` (namespace finance) lives in an IAM Identity Center group: Vault grants ann,
bob and pat; the group has ann and eve. So the first check shows bob missing (he has a user:
a sync adds him), pat missing with "no AWS user with this email" (never created: users come
from SCIM), and eve extra. Without moto (``pip install -e '.[aws-demo]'``) the demo says how
to add it and runs with Cloudflare alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.demo.sample import add_member

AUDIENCE = "aws-payroll"
VAULT_MEMBERS = ("ann@example.com", "bob@example.com", "pat@example.com")
USERS = ("ann@example.com", "bob@example.com", "eve@example.com")  # pat has none
GROUP_MEMBERS = ("ann@example.com", "eve@example.com")
HOW_TO_ADD = (
    "  AWS audience    none: pip install 'vault-drift[aws-demo]' adds one, in moto's IAM"
    " Identity Center on loopback"
)


def start_local_store() -> Any | None:
    """moto's identity store on loopback, started; None when moto is not installed."""
    try:
        from exporter.aws.local import LocalIdentityStore, moto_available
    except ImportError:  # no boto3
        return None
    if not moto_available():
        return None
    return LocalIdentityStore().start()


def add_aws_audience(database: Path, store: Any, now: datetime) -> str:
    """The AWS side (users, the group, its memberships) and the Vault side of ``aws-payroll``;
    the group id."""
    users = {email: store.add_user(email) for email in USERS}
    group = str(store.add_group(AUDIENCE))
    for email in GROUP_MEMBERS:
        store.add_member(group, users[email])
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO iam_organization (id, name) VALUES ('org-aws', 'finance')")
        conn.execute(
            "INSERT INTO iam_group (id, organization_id, name) VALUES ('g-aws', 'org-aws', ?)",
            ("Payroll",),
        )
        conn.execute(
            "INSERT INTO iam_application (id, organization_id, name, audiences)"
            " VALUES ('app-aws', 'org-aws', 'Payroll', ?)",
            (json.dumps([AUDIENCE]),),
        )
        for email in VAULT_MEMBERS:
            add_member(conn, email, "g-aws", now)
        conn.execute(
            "INSERT INTO sys_infra_state (audience, namespace, provider, provider_resource_id,"
            " provider_resource_type, sync_status) VALUES (?, 'finance', 'aws_identity_center',"
            " ?, 'identitystore_group', 'pending')",
            (AUDIENCE, group),
        )
    return group


def use_local_credentials() -> None:
    """The demo's process talks to moto only: its credentials and region are moto's (never a
    real AWS identity of the user's environment)."""
    from exporter.aws.local import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY

    os.environ.update(
        AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_ACCESS_KEY,
        AWS_REGION=LOCAL_REGION,
        AWS_DEFAULT_REGION=LOCAL_REGION,
    )
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)


def banner_lines(store: Any | None) -> list[str]:
    if store is None:
        return [HOW_TO_ADD]
    return [
        f"  AWS (moto)      {store.endpoint_url}",
        f"    store id      {store.store_id}   (audience {AUDIENCE})",
    ]
