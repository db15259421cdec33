"""Each audience is read and written through its own provider, never through Cloudflare's
because it is the only one wired: an AWS row without AWS configured, or a provider nobody
knows, is ``error`` with a clear reason, and nothing is written anywhere for it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from support.web import auth

from exporter.demo.simulator import CloudflareSimulator
from tests.aws.vault_rows import add_audience, group_id_of


def cloudflare_writes(simulator: CloudflareSimulator) -> list[tuple[str, str, int]]:
    return [r for r in simulator.request_log if r[0] in ("POST", "PUT", "DELETE")]


def test_creating_the_group_of_an_aws_audience_never_creates_a_cloudflare_group(
    client: TestClient, simulator: CloudflareSimulator, sample_db: Path
) -> None:
    add_audience(sample_db, "aws-payroll", "aws_identity_center", None, ["pat@example.com"])
    groups = len(simulator.groups())
    answer = client.post("/iam/drift/groups", json={"audience": "aws-payroll"}, headers=auth())
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "provider unavailable"
    assert "VAULT_DRIFT_AWS_IDENTITY_STORE_ID" in answer.json()["detail"]
    assert len(simulator.groups()) == groups and not cloudflare_writes(simulator)
    assert group_id_of(sample_db, "aws-payroll") is None


def test_an_aws_audience_is_never_read_as_a_cloudflare_group(
    client: TestClient, simulator: CloudflareSimulator, sample_db: Path
) -> None:
    add_audience(sample_db, "aws-payroll", "aws_identity_center", "aws-group-1", ["pat@x.com"])
    item = client.post("/iam/drift/check", json={"audience": "aws-payroll"}, headers=auth()).json()
    assert item["status"] == "error" and item["provider"] == "aws_identity_center"
    assert "VAULT_DRIFT_AWS_IDENTITY_STORE_ID" in item["error_message"]
    assert "Cloudflare" not in item["error_message"]
    client.post("/iam/drift/check", json={}, headers=auth())
    assert not [r for r in simulator.request_log if "aws-group-1" in r[1]]
    document = client.get("/iam/drift", headers=auth()).json()
    statuses = {i["audience"]: i["status"] for i in document["items"]}
    assert statuses["aws-payroll"] == "error" and statuses["administrators"] == "synced"


def test_an_unknown_provider_is_an_error_and_nothing_writes_to_it(
    client: TestClient, simulator: CloudflareSimulator, sample_db: Path
) -> None:
    add_audience(sample_db, "okta-crm", "okta", "okta-group-7", ["pat@example.com"])
    add_audience(sample_db, "okta-new", "okta", None, ["pat@example.com"])
    client.post("/iam/drift/check", json={}, headers=auth())
    item = client.get("/iam/drift/okta-crm", headers=auth()).json()
    assert item["status"] == "error"
    assert "unknown provider okta" in item["error_message"]
    synced = client.post(
        "/iam/drift/sync", json={"audience": "okta-crm", "force": True}, headers=auth()
    ).json()["results"]
    assert [(r["result"], "unknown provider okta" in r["reason"]) for r in synced] == [
        ("error", True)
    ]
    created = client.post("/iam/drift/groups", json={"audience": "okta-new"}, headers=auth())
    assert created.status_code == 409 and "unknown provider okta" in created.json()["detail"]
    assert not cloudflare_writes(simulator) and group_id_of(sample_db, "okta-new") is None
