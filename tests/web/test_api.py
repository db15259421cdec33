"""The HTTP API through FastAPI's test client, with real collaborators behind it."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import T0, FixedClock, make_client
from support.web import ADMIN, READ, auth, services_for

from exporter.demo.sample import add_member
from exporter.demo.simulator import CloudflareSimulator, Faults
from exporter.service import Services
from exporter.service.checker import Checker
from exporter.web import create_app


def test_drift_document_matches_the_seed(client: TestClient) -> None:
    document = client.get("/iam/drift", headers=auth(READ)).json()
    assert document["summary"] == {"total": 5, "pending": 1, "synced": 2, "drift": 1, "error": 1}
    assert document["last_check"] == "2026-11-25T10:00:00Z"
    first = document["items"][0]
    assert first["audience"] == "lms-instructors" and first["status"] == "drift"
    assert first["drift_details"] == {
        "expected_count": 8,
        "actual_count": 7,
        "missing": ["alice@example.com", "bob@example.com"],
        "extra": ["olduser@example.com"],
        "missing_total": 2,
        "extra_total": 1,
    }
    assert first["alert_level"] == "info" and first["drift_since"] == "2026-11-25T10:00:00Z"
    errored = next(i for i in document["items"] if i["status"] == "error")
    assert "not found" in errored["error_message"]


def test_filters(client: TestClient) -> None:
    by_status = client.get("/iam/drift?status=synced", headers=auth()).json()
    assert {i["audience"] for i in by_status["items"]} == {"administrators", "developers"}
    by_namespace = client.get("/iam/drift?namespace=lms", headers=auth()).json()
    assert {i["audience"] for i in by_namespace["items"]} == {"lms-instructors", "lms-viewer"}
    bad = client.get("/iam/drift?status=weird", headers=auth())
    assert bad.status_code == 422 and bad.json()["error"] == "invalid request"


def test_name_search_q_with_the_other_filters(client: TestClient) -> None:
    by_name = client.get("/iam/drift?q=LMS-", headers=auth()).json()
    assert {i["audience"] for i in by_name["items"]} == {"lms-instructors", "lms-viewer"}
    assert by_name["summary"]["total"] == 5  # the summary stays over every audience
    both = client.get("/iam/drift?q=view&namespace=lms&status=pending", headers=auth()).json()
    assert [i["audience"] for i in both["items"]] == ["lms-viewer"]
    assert client.get("/iam/drift?q=nobody", headers=auth()).json()["items"] == []


def test_one_audience_in_full_with_paging(client: TestClient) -> None:
    page = client.get("/iam/drift/lms-instructors?limit=1&offset=1", headers=auth()).json()
    assert page["missing_total"] == 2 and page["limit"] == 1
    [member] = page["missing"]
    assert member["email"] == "bob@example.com"
    assert member["added_in_vault_at"] == "2026-11-25T08:00:00Z"
    assert "push failed" in member["hint"]
    assert page["history"][0]["closed_at"] is None
    dev = client.get("/iam/drift/developers", headers=auth()).json()
    assert dev["other_rules"] == [
        {"list": "include", "rule": {"email_domain": {"domain": "contractors.example.com"}}},
        {"list": "include", "rule": {"ip": {"ip": "10.0.0.0/8"}}},
    ]
    assert client.get("/iam/drift/nope", headers=auth()).status_code == 404


def test_exclusions_and_domain_rules_in_the_document_and_the_sync(
    client: TestClient, simulator: CloudflareSimulator, sample_db: Path
) -> None:
    gid = next(g["id"] for g in simulator.groups() if g["name"] == "developers")
    group = make_client(simulator).get_group(gid)
    barred = {"email": {"email": "Dev2@example.com"}}
    require = [{"geo": {"country_code": "FR"}}]
    make_client(simulator).replace_group(replace(group, exclude=[barred], require=require))
    with sqlite3.connect(sample_db) as conn:
        add_member(conn, "pat@contractors.example.com", "g-2", T0)

    check = client.post("/iam/drift/check", json={"audience": "developers"}, headers=auth())
    assert check.json()["drift_details"]["missing"] == [
        "dev2@example.com",
        "pat@contractors.example.com",
    ]
    dev = client.get("/iam/drift/developers", headers=auth()).json()
    assert {m["email"]: m["hint"] for m in dev["missing"]} == {
        "dev2@example.com": "excluded in Cloudflare",
        "pat@contractors.example.com": (
            "has access through the domain rule contractors.example.com"
        ),
    }
    assert [(r["list"], r["rule"]) for r in dev["other_rules"]] == [
        ("include", {"email_domain": {"domain": "contractors.example.com"}}),
        ("include", {"ip": {"ip": "10.0.0.0/8"}}),
        ("exclude", barred),
        ("require", require[0]),
    ]

    [result] = client.post(
        "/iam/drift/sync", json={"audience": "developers"}, headers=auth()
    ).json()["results"]
    assert result["result"] == "synced" and result["added"] == ["pat@contractors.example.com"]
    assert result["reason"] == (
        "excluded in Cloudflare: remove the exclusion by hand: dev2@example.com"
    )
    assert simulator.group(gid)["exclude"] == [barred]
    after = client.get("/iam/drift/developers", headers=auth()).json()
    assert after["status"] == "drift" and [m["email"] for m in after["missing"]] == [
        "dev2@example.com"
    ]


def test_sync_contract(client: TestClient) -> None:
    empty = client.post("/iam/drift/sync", json={}, headers=auth())
    assert empty.status_code == 400 and "exactly one target" in empty.json()["detail"]
    assert (
        client.post("/iam/drift/sync", json={"audience": "nope"}, headers=auth()).status_code == 404
    )
    dry = client.post(
        "/iam/drift/sync", json={"audience": "lms-instructors", "dry_run": True}, headers=auth()
    ).json()
    assert dry["results"] == [
        {
            "audience": "lms-instructors",
            "result": "synced",
            "added": ["alice@example.com", "bob@example.com"],
            "removed": ["olduser@example.com"],
            "reason": None,
            "blocked_reason": None,
            "revoked": [],  # a dry run ends no session
        }
    ]
    done = client.post("/iam/drift/sync", json={"all": True}, headers=auth()).json()
    assert [(r["audience"], r["result"]) for r in done["results"]] == [
        ("lms-instructors", "synced"),
        ("sales-team", "error"),  # its group is gone: an error result, never left out
    ]
    after = client.get("/iam/drift/lms-instructors", headers=auth()).json()
    assert after["status"] == "synced" and after["syncs"][0]["trigger"] == "api"


def test_sync_all_whose_check_failed_syncs_nothing_and_says_why(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    simulator.faults = Faults(rate_5xx=1.0)  # the listing fails: no status can be known
    r = client.post("/iam/drift/sync", json={"all": True}, headers=auth())
    assert r.status_code == 200
    body = r.json()
    assert body["check_error"].startswith("Cloudflare listing failed: ")
    assert body["results"] and {x["result"] for x in body["results"]} == {"error"}
    assert all(x["reason"].startswith("not checked: ") for x in body["results"])
    assert not [m for m, _, _ in simulator.request_log if m == "PUT"]


def test_a_blocked_sync_names_its_guard(client: TestClient, simulator: CloudflareSimulator) -> None:
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.set_include(
        admins["id"], admins["include"] + [{"email": {"email": f"x{i}@e.com"}} for i in range(8)]
    )
    [result] = client.post(
        "/iam/drift/sync", json={"audience": "administrators"}, headers=auth()
    ).json()["results"]
    assert result["result"] == "blocked" and result["blocked_reason"] == "mass_removal"
    metrics = client.get("/metrics").text
    assert 'vault_drift_syncs_blocked_total{reason="mass_removal"} 1.0' in metrics
    assert 'vault_drift_syncs_total{result="blocked",trigger="api"} 1.0' in metrics


def test_check_now(client: TestClient, simulator: CloudflareSimulator) -> None:
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.set_include(admins["id"], [])
    item = client.post(
        "/iam/drift/check", json={"audience": "administrators"}, headers=auth()
    ).json()
    assert item["status"] == "drift" and item["drift_details"]["missing_total"] == 2
    full = client.post("/iam/drift/check", json={}, headers=auth()).json()
    assert full["summary"]["drift"] == 2


def test_a_change_notification_checks_only_the_audiences_it_names(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    """vault-api's notification after ADD_MEMBER / REMOVE_MEMBER (README, "HTTP API")."""
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.set_include(admins["id"], [])
    before = simulator.request_count
    answer = client.post(
        "/iam/drift/check",
        json={"audiences": ["administrators", "developers", "administrators"]},
        headers=auth(),
    )
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [(i["audience"], i["status"]) for i in items] == [
        ("administrators", "drift"),
        ("developers", "synced"),
    ]
    assert simulator.request_count - before == 2  # one direct GET per group, no listing


def test_a_notification_naming_an_unknown_audience_checks_nothing(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    before = simulator.request_count
    answer = client.post(
        "/iam/drift/check", json={"audiences": ["developers", "nope", "gone"]}, headers=auth()
    )
    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown audience", "detail": ["gone", "nope"]}
    assert simulator.request_count == before
    too_many = client.post(
        "/iam/drift/check", json={"audiences": [f"a{i}" for i in range(101)]}, headers=auth()
    )
    assert too_many.status_code == 400
    both = client.post(
        "/iam/drift/check", json={"audience": "developers", "audiences": ["x"]}, headers=auth()
    )
    assert both.status_code == 400
    read_only = client.post(
        "/iam/drift/check", json={"audiences": ["developers"]}, headers=auth(READ)
    )
    assert read_only.status_code == 403


def throttle_administrators(simulator: CloudflareSimulator, retry_after: int = 1) -> None:
    """Issue 11 item 1: one group hidden from the listing that always answers 429."""
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.faults = Faults(throttled_group=admins["id"], retry_after_seconds=retry_after)


def test_a_sync_right_after_a_check_that_met_a_429_waits_the_pause_out(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    throttle_administrators(simulator)
    checked = client.post("/iam/drift/check", json={}, headers=auth()).json()
    statuses = {item["audience"]: item["status"] for item in checked["items"]}
    assert statuses["administrators"] == "error" and statuses["lms-instructors"] == "drift"

    [result] = client.post(
        "/iam/drift/sync", json={"audience": "lms-instructors"}, headers=auth()
    ).json()["results"]

    assert result["result"] == "synced", result
    assert client.get("/iam/drift/lms-instructors", headers=auth()).json()["status"] == "synced"


def test_sync_all_through_the_api_heals_while_one_group_answers_429(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    """Field report 2, item 1: the audience the check could not read is a result ``error``
    with its reason, not left out (it used to answer only lms-instructors)."""
    throttle_administrators(simulator)
    done = client.post("/iam/drift/sync", json={"all": True}, headers=auth()).json()
    results = {r["audience"]: r for r in done["results"]}
    assert {name: r["result"] for name, r in results.items()} == {
        "administrators": "error",
        "lms-instructors": "synced",
        "sales-team": "error",
    }
    assert "429" in results["administrators"]["reason"] or "rate limit" in (
        results["administrators"]["reason"].lower()
    )


def test_auto_sync_follows_a_forced_check_full_or_of_one_audience(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    assert (
        client.put("/iam/drift/settings", json={"auto_sync": "full"}, headers=auth()).status_code
        == 200
    )
    throttle_administrators(simulator)

    full = client.post("/iam/drift/check", json={}, headers=auth()).json()

    statuses = {item["audience"]: item["status"] for item in full["items"]}
    assert statuses["administrators"] == "error"
    assert statuses["lms-instructors"] == "synced"  # healed by the auto-sync after the check
    after = client.get("/iam/drift/lms-instructors", headers=auth()).json()
    assert after["syncs"][0]["trigger"] == "auto"

    developers = next(g for g in simulator.groups() if g["name"] == "developers")
    simulator.set_include(developers["id"], developers["include"][:-1])  # the page's Retry
    item = client.post("/iam/drift/check", json={"audience": "developers"}, headers=auth()).json()
    assert item["status"] == "synced"
    synced = client.get("/iam/drift/developers", headers=auth()).json()["syncs"][0]
    assert (synced["trigger"], synced["added"]) == ("auto", ["dev5@example.com"])


def test_without_auto_sync_a_forced_check_writes_nothing(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    client.post("/iam/drift/check", json={}, headers=auth())
    assert not any(method == "PUT" for method, _, _ in simulator.request_log)


def test_create_group_for_pending_and_conflict(client: TestClient) -> None:
    created = client.post("/iam/drift/groups", json={"audience": "lms-viewer"}, headers=auth())
    assert created.status_code == 201 and created.json()["status"] == "synced"
    again = client.post("/iam/drift/groups", json={"audience": "lms-viewer"}, headers=auth())
    assert again.status_code == 409


def test_settings_round_trip_and_validation(client: TestClient) -> None:
    assert (
        client.get("/iam/drift/settings", headers=auth(READ)).json()["check_interval_seconds"]
        == 900
    )
    saved = client.put(
        "/iam/drift/settings",
        json={"check_interval_seconds": 60, "auto_sync": "add_only"},
        headers=auth(),
    ).json()
    assert saved["check_interval_seconds"] == 60 and saved["auto_sync"] == "add_only"
    bad = client.put(
        "/iam/drift/settings",
        json={"check_interval_seconds": 5, "warning_threshold_seconds": 90000, "auto_sync": "x"},
        headers=auth(),
    )
    assert bad.status_code == 422
    assert set(bad.json()["detail"]) == {"check_interval_seconds", "auto_sync"}
    order = client.put(
        "/iam/drift/settings", json={"warning_threshold_seconds": 90000}, headers=auth()
    )
    assert order.status_code == 422
    assert client.get("/iam/drift/settings", headers=auth()).json()["check_interval_seconds"] == 60


def test_ignore_and_unignore(client: TestClient, clock: FixedClock) -> None:
    item = client.post(
        "/iam/drift/ignore",
        json={"audience": "lms-instructors", "duration": "2h", "reason": "migration"},
        headers=auth(),
    ).json()
    assert item["ignored_until"] == "2026-11-25T12:00:00Z" and item["ignore_reason"] == "migration"
    metrics = client.get("/metrics").text
    assert (
        'vault_drift_audience_ignored{audience="lms-instructors",namespace="lms",provider="cloudflare_access"} 1.0'
        in metrics
    )
    clock.advance(hours=3)  # it expires by itself
    listed = client.get("/iam/drift?status=drift", headers=auth()).json()["items"][0]
    assert listed["ignored_until"] is None
    bad = client.post(
        "/iam/drift/ignore",
        json={"audience": "lms-instructors", "duration": "soon", "reason": "x"},
        headers=auth(),
    )
    assert bad.status_code == 422
    gone = client.delete("/iam/drift/ignore/lms-instructors", headers=auth()).json()
    assert gone["removed"] is True


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"audience": 5}',
        '{"all": "yes"}',
        '{"audience": "a", "all": true}',
        '{"audience": "' + "x" * 5000 + '"}',
        '{"unknown": 1}',
    ],
)
def test_malformed_input_is_a_4xx_never_a_5xx(client: TestClient, body: str) -> None:
    for path in ("/iam/drift/sync", "/iam/drift/check", "/iam/drift/groups", "/iam/drift/ignore"):
        response = client.post(
            path, content=body, headers={**auth(), "content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (path, body, response.status_code)
        assert "error" in response.json()


def routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path.replace("{audience}", "lms-instructors"))
        for path, item in spec["paths"].items()
        for method in item
        if path.startswith("/iam/")
    ]


def test_auth_on_every_route(client: TestClient) -> None:
    table = routes(client)
    assert len(table) >= 9
    for method, path in table:
        assert client.request(method, path).status_code == 401, (method, path)
        assert client.request(method, path, headers=auth("wrong-token-xxxxxxxx")).status_code == 401
        if method != "GET":
            assert client.request(method, path, headers=auth(READ), json={}).status_code == 403
    for free in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
        assert client.get(free).status_code == 200


def test_no_admin_token_disables_the_api(
    services: Services, checker: Checker, clock: FixedClock
) -> None:
    checker.check_all()
    with TestClient(create_app(services_for(services, clock, admin=None), page=False)) as client:
        for method, path in routes(client):
            assert client.request(method, path, headers=auth(READ)).status_code == 403
        assert client.get("/metrics").status_code == 200


def test_readyz_follows_the_last_successful_cycle(client: TestClient, clock: FixedClock) -> None:
    assert client.get("/readyz").status_code == 200
    clock.advance(seconds=2 * 900 + 1)
    stale = client.get("/readyz")
    assert stale.status_code == 503 and "limit 1800s" in stale.json()["detail"]


def test_tokens_never_appear_in_answers(client: TestClient, sample_db: Path) -> None:
    with sqlite3.connect(sample_db):
        pass
    bodies = [
        client.get(p, headers=auth()).text for p in ("/iam/drift", "/metrics", "/openapi.json")
    ]
    bodies.append(client.get("/iam/drift", headers=auth("wrong-token-xxxxxxxx")).text)
    for body in bodies:
        assert ADMIN not in body and READ not in body and "demo-token" not in body
