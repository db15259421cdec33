"""AWS audiences beside Cloudflare's, through the API: check, sync, guards, group creation,
a Vault member without an AWS user, throttling and AWS unreachable (moto is the AWS side)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import FixedClock, free_port

from exporter.aws.local import LocalIdentityStore
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import Services
from exporter.service.sessions import SessionRevoker
from exporter.service.syncer import SyncRequest
from tests.aws.aws_world import FakeTime, client_for
from tests.aws.faults import FaultProxy
from tests.aws.mixed_world import api_client, auth, logged_in, mixed_services
from tests.aws.vault_rows import add_audience, group_id_of


@pytest.fixture
def payroll(store: LocalIdentityStore, sample_db: Path) -> str:
    """An AWS audience: Vault grants ann, bob and pat; AWS has ann and eve; pat has no user."""
    group = store.add_group("aws-payroll")
    ann, _bob, eve = (store.add_user(f"{n}@example.com") for n in ("Ann", "bob", "eve"))
    store.add_member(group, ann)
    store.add_member(group, eve)
    members = ["ann@example.com", "bob@example.com", "pat@example.com"]
    add_audience(sample_db, "aws-payroll", "aws_identity_center", group, members)
    return group


@pytest.fixture
def services(
    sample_db: Path,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    store: LocalIdentityStore,
    proxy: FaultProxy,
    fake_time: FakeTime,
) -> Services:
    return mixed_services(sample_db, simulator, clock, client_for(store, proxy.url, fake_time))


@pytest.fixture
def api(services: Services, clock: FixedClock) -> Iterator[TestClient]:
    with api_client(services, clock) as client:
        yield client


def test_an_aws_audience_is_checked_through_aws_beside_cloudflares(
    api: TestClient, payroll: str, proxy: FaultProxy
) -> None:
    document = api.post("/iam/drift/check", json={}, headers=auth()).json()
    statuses = {i["audience"]: (i["provider"], i["status"]) for i in document["items"]}
    assert statuses["aws-payroll"] == ("aws_identity_center", "drift")
    assert statuses["administrators"] == ("cloudflare_access", "synced")
    item = api.get("/iam/drift/aws-payroll", headers=auth()).json()
    missing = {m["email"]: m["hint"] for m in item["missing"]}
    assert missing["pat@example.com"] == "no AWS user with this email"
    assert "no AWS user" not in missing["bob@example.com"]
    assert [m["email"] for m in item["extra"]] == ["eve@example.com"]
    assert all(m["changed_by"] is None for m in item["extra"])  # not applicable to AWS
    capabilities = item["provider_capabilities"]
    assert capabilities["session_revocation"] is False and capabilities["attribution"] is False
    assert "session revocation applies to Cloudflare Access only" in capabilities["note"]
    admins = api.get("/iam/drift/administrators", headers=auth()).json()
    assert admins["provider_capabilities"]["session_revocation"] is True
    assert proxy.calls["ListUsers"] == 1 and proxy.calls["ListGroupMemberships"] == 1
    metrics = api.get("/metrics").text
    assert 'vault_drift_source_up{source="aws_identity_center"} 1.0' in metrics
    assert (
        'vault_drift_provider_requests_total{operation="ListUsers",provider="aws_identity_center",'
        'status_class="2xx"} 1.0'
    ) in metrics
    assert (
        'vault_drift_audience_status{audience="aws-payroll",namespace="finance",'
        'provider="aws_identity_center",status="drift"} 1.0'
    ) in metrics


def test_a_sync_adds_and_removes_in_aws_and_never_creates_a_user(
    api: TestClient, payroll: str, store: LocalIdentityStore, proxy: FaultProxy
) -> None:
    api.post("/iam/drift/check", json={}, headers=auth())
    dry = api.post(
        "/iam/drift/sync", json={"audience": "aws-payroll", "dry_run": True}, headers=auth()
    ).json()["results"][0]
    assert (dry["added"], dry["removed"]) == (["bob@example.com"], ["eve@example.com"])
    assert proxy.calls["CreateGroupMembership"] == 0
    [result] = api.post("/iam/drift/sync", json={"audience": "aws-payroll"}, headers=auth()).json()[
        "results"
    ]
    assert result["result"] == "synced"
    assert (result["added"], result["removed"]) == (["bob@example.com"], ["eve@example.com"])
    assert (
        "no AWS user with this email" in result["reason"] and "pat@example.com" in result["reason"]
    )
    assert proxy.calls["CreateUser"] == 0
    assert proxy.calls["CreateGroupMembership"] == 1 and proxy.calls["DeleteGroupMembership"] == 1
    item = api.get("/iam/drift/aws-payroll", headers=auth()).json()
    assert item["status"] == "drift" and [m["email"] for m in item["missing"]] == [
        "pat@example.com"
    ]
    assert item["syncs"][0]["added"] == ["bob@example.com"]
    again = api.post("/iam/drift/sync", json={"audience": "aws-payroll"}, headers=auth()).json()
    assert again["results"][0]["result"] == "noop"  # pat stays missing: never created


def test_the_guards_hold_for_aws(
    api: TestClient, store: LocalIdentityStore, sample_db: Path, proxy: FaultProxy
) -> None:
    group = store.add_group("aws-big")
    for i in range(20):
        store.add_member(group, store.add_user(f"m{i}@example.com"))
    add_audience(sample_db, "aws-big", "aws_identity_center", group, ["m0@example.com"])
    [blocked] = api.post("/iam/drift/sync", json={"audience": "aws-big"}, headers=auth()).json()[
        "results"
    ]
    assert blocked["result"] == "blocked" and blocked["blocked_reason"] == "mass_removal"
    assert proxy.calls["DeleteGroupMembership"] == 0
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM iam_user_group WHERE group_id = 'g-aws-big'")
    [empty] = api.post("/iam/drift/sync", json={"audience": "aws-big"}, headers=auth()).json()[
        "results"
    ]
    assert empty["blocked_reason"] == "empty_source"
    assert proxy.calls["DeleteGroupMembership"] == 0


def test_a_pending_aws_audience_gets_its_group_in_aws(
    api: TestClient,
    store: LocalIdentityStore,
    sample_db: Path,
    simulator: CloudflareSimulator,
) -> None:
    store.add_user("ann@example.com")
    add_audience(
        sample_db, "aws-new", "aws_identity_center", None, ["ann@example.com", "pat@example.com"]
    )
    cloudflare_groups = len(simulator.groups())
    created = api.post("/iam/drift/groups", json={"audience": "aws-new"}, headers=auth())
    assert created.status_code == 201, created.text
    group_id = group_id_of(sample_db, "aws-new")
    assert group_id is not None and store.group_names()[group_id] == "aws-new"
    assert len(simulator.groups()) == cloudflare_groups
    with sqlite3.connect(sample_db) as conn:
        kind = conn.execute(
            "SELECT provider_resource_type FROM sys_infra_state WHERE audience = 'aws-new'"
        ).fetchone()[0]
    assert kind == "identitystore_group"
    item = api.post("/iam/drift/check", json={"audience": "aws-new"}, headers=auth()).json()
    assert item["status"] == "drift"  # pat has no AWS user: missing, with its hint
    assert (
        api.post("/iam/drift/groups", json={"audience": "aws-new"}, headers=auth()).status_code
        == 409
    )


def test_aws_throttling_pauses_aws_only(
    api: TestClient, payroll: str, proxy: FaultProxy, services: Services
) -> None:
    proxy.fail("ListUsers", times=1, retry_after=600)
    document = api.post("/iam/drift/check", json={}, headers=auth()).json()
    statuses = {i["audience"]: i for i in document["items"]}
    assert statuses["aws-payroll"]["status"] == "error"
    assert "ThrottlingException" in statuses["aws-payroll"]["error_message"]
    assert statuses["administrators"]["status"] == "synced"
    assert services.cloudflare.pause_left() is None
    metrics = api.get("/metrics").text
    assert 'vault_drift_provider_throttled_total{provider="aws_identity_center"} 1.0' in metrics
    assert 'vault_drift_provider_throttled_total{provider="cloudflare_access"} 0.0' in metrics
    assert 'vault_drift_source_up{source="aws_identity_center"} 0.0' in metrics
    assert 'vault_drift_source_up{source="cloudflare_access"} 1.0' in metrics
    calls = proxy.calls["ListUsers"]
    item = api.post("/iam/drift/check", json={"audience": "aws-payroll"}, headers=auth()).json()
    assert "throttled: AWS calls paused" in item["error_message"]
    assert proxy.calls["ListUsers"] == calls  # refused without touching AWS


def test_aws_unreachable_while_cloudflare_stays_healthy(
    sample_db: Path,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    store: LocalIdentityStore,
    fake_time: FakeTime,
    payroll: str,
) -> None:
    down = client_for(store, f"http://127.0.0.1:{free_port()}", fake_time)
    services = mixed_services(sample_db, simulator, clock, down)
    snapshot = services.cycle.check_all("schedule")
    payroll_check = snapshot.checks["aws-payroll"]
    assert payroll_check.status.value == "error"
    assert "cannot reach AWS" in (payroll_check.error_message or "")
    assert snapshot.checks["administrators"].status.value == "synced"
    assert snapshot.cycle_error is None and snapshot.last_success_at is not None
    assert snapshot.providers_up == {"aws_identity_center": False}
    [result] = services.cycle.sync(SyncRequest(["aws-payroll"]))
    assert result.result.value == "error" and "cannot reach AWS" in (result.reason or "")


def test_without_the_store_id_aws_audiences_are_errors_naming_it(
    sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock, payroll: str
) -> None:
    services = mixed_services(sample_db, simulator, clock, None)
    snapshot = services.cycle.check_all("schedule")
    assert snapshot.checks["aws-payroll"].status.value == "error"
    assert "VAULT_DRIFT_AWS_IDENTITY_STORE_ID" in (
        snapshot.checks["aws-payroll"].error_message or ""
    )
    assert snapshot.checks["administrators"].status.value == "synced"


def test_auto_sync_heals_aws_and_cloudflare_audiences_in_one_cycle(
    api: TestClient,
    services: Services,
    payroll: str,
    simulator: CloudflareSimulator,
    proxy: FaultProxy,
) -> None:
    api.put("/iam/drift/settings", json={"auto_sync": "full"}, headers=auth())
    developers = next(g for g in simulator.groups() if g["name"] == "developers")
    stranger = {"email": {"email": "stranger@example.com"}}  # an edit by hand in Cloudflare
    simulator.set_include(developers["id"], [*developers["include"], stranger])
    snapshot = services.cycle.check_all("schedule")
    assert snapshot.checks["developers"].status.value == "synced"
    payroll_check = snapshot.checks["aws-payroll"]
    assert payroll_check.status.value == "drift"  # pat has no AWS user: never created
    assert [m.email for m in payroll_check.missing] == ["pat@example.com"]
    assert not payroll_check.extra
    assert proxy.calls["CreateGroupMembership"] == 1 and proxy.calls["DeleteGroupMembership"] == 1
    audit = services.vault.audit(audience="aws-payroll", limit=5)
    assert audit[0]["trigger"] == "auto" and audit[0]["result"] == "synced"


def test_the_page_names_each_audiences_provider(
    services: Services, clock: FixedClock, payroll: str
) -> None:
    services.cycle.check_all("schedule")
    with api_client(services, clock, page=True) as client:
        page = logged_in(client).get("/").text
        details = client.get("/fragments/details", params={"audience": "aws-payroll"}).text
    assert "AWS IAM Identity Center · Cloudflare Access" in page
    found = re.search(r'<article[^>]*data-audience="aws-payroll".*?</article>', page, re.S)
    assert found is not None
    card = found.group(0)
    assert "AWS IAM Identity Center" in card and "Missing in AWS (2)" in card
    assert "Extra in AWS" in card and "Cloudflare" not in card
    assert "added in Vault recently: the push to AWS may not have run yet" in details
    assert "manually added? in AWS but not in Vault" in details
    assert "no AWS user with this email" in details


def test_leaving_an_aws_group_never_revokes_cloudflare_sessions(
    services: Services,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    payroll: str,
    sample_db: Path,
) -> None:
    """Session revocation is Cloudflare's: eve removed from the AWS group keeps the Access
    sessions a Cloudflare audience grants her; a Cloudflare leaver's end as before."""
    tools = simulator.add_group("eve-tools", [{"email": {"email": "eve@example.com"}}])
    add_audience(sample_db, "eve-tools", "cloudflare_access", tools, ["eve@example.com"])
    revoker = SessionRevoker(services.vault, services.cloudflare, clock=clock)
    services.cycle.followers.append(revoker)
    assert simulator.login("eve@example.com")
    services.cycle.check_all("schedule")
    [outcome] = services.cycle.sync(SyncRequest(["aws-payroll"], trigger="api", actor="t"))
    assert outcome.removed == ("eve@example.com",) and outcome.revoked == ()
    assert simulator.sessions.revoked_emails() == []
    assert simulator.sessions.live("eve@example.com") == 1
    assert services.vault.session_revocations("aws-payroll") == []
    [cloudflare] = services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    assert cloudflare.revoked == ("olduser@example.com",)
