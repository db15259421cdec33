"""One mixed world under ``vault-drift serve``: a real process, Cloudflare audiences on the
simulator and an AWS audience on moto's identity store, configured as users configure it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import wait_for

from exporter.aws.local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
    LocalIdentityStore,
)
from exporter.clock import utc_now
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from tests.aws.vault_rows import add_audience
from tests.test_server import ADMIN, Served, series

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def served(
    tmp_path: Path, simulator: CloudflareSimulator, store: LocalIdentityStore
) -> Iterator[tuple[Served, str]]:
    database = tmp_path / "vault.db"
    build_sample(database, simulator, utc_now())
    group = store.add_group("aws-payroll")
    ann, eve = store.add_user("ann@example.com"), store.add_user("eve@example.com")
    store.add_user("bob@example.com")
    store.add_member(group, ann)
    store.add_member(group, eve)
    members = ["ann@example.com", "bob@example.com"]
    add_audience(database, "aws-payroll", "aws_identity_center", group, members)
    env = {
        "VAULT_DRIFT_AWS_IDENTITY_STORE_ID": store.store_id,
        "VAULT_DRIFT_AWS_ENDPOINT_URL": store.endpoint_url,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "AWS_REGION": LOCAL_REGION,  # as users set it (botocore itself reads only the DEFAULT)
        "AWS_DEFAULT_REGION": "",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    server = Served(database, simulator, tmp_path / "serve.log", extra_env=env)
    try:
        yield server, group
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def test_serve_checks_and_syncs_a_mixed_world(
    served: tuple[Served, str], store: LocalIdentityStore
) -> None:
    server, group = served
    status = "vault_drift_audience_status"

    def checked() -> bool:
        return 'provider="aws_identity_center",status="drift"} 1.0' in server.metrics()

    wait_for(checked, 30, "the first cycle's AWS audience")
    metrics = server.metrics()
    assert series(metrics, status, "administrators") is not None
    assert 'vault_drift_source_up{source="aws_identity_center"} 1.0' in metrics
    assert 'vault_drift_source_up{source="cloudflare_access"} 1.0' in metrics
    assert 'provider="aws_identity_center",status_class="2xx"}' in metrics
    assert 'operation="GET",provider="cloudflare_access",status_class="2xx"}' in metrics
    answer = requests.post(
        f"{server.url}/iam/drift/sync", json={"audience": "aws-payroll"}, headers=AUTH, timeout=30
    ).json()
    [result] = answer["results"]
    assert result["result"] == "synced", result
    assert (result["added"], result["removed"]) == (["bob@example.com"], ["eve@example.com"])
    emails = {u: e for e, u in _users(store).items()}
    assert sorted(emails[u] for u in store.member_ids(group)) == [
        "ann@example.com",
        "bob@example.com",
    ]
    item = requests.get(f"{server.url}/iam/drift/aws-payroll", headers=AUTH, timeout=10).json()
    assert item["status"] == "synced" and item["provider"] == "aws_identity_center"
    assert server.stop() == 0
    log = server.log.read_text()
    assert LOCAL_SECRET_ACCESS_KEY not in log


def _users(store: LocalIdentityStore) -> dict[str, str]:
    """email -> user id, from moto's store."""
    from exporter.aws.local import local_session

    client = local_session().client("identitystore", endpoint_url=store.endpoint_url)
    pages = client.get_paginator("list_users").paginate(IdentityStoreId=store.store_id)
    return {
        u["Emails"][0]["Value"]: u["UserId"] for page in pages for u in page["Users"] if u["Emails"]
    }
