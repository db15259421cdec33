"""``/iam/drift/{audience}/exemptions`` through the test client: every path and every error,
and what an exemption changes in the documents and on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import FixedClock
from support.web import READ, auth

AUD = "lms-instructors"  # the sample: alice and bob missing, olduser extra
URL = f"/iam/drift/{AUD}/exemptions"


def exempt(client: TestClient, **body: Any) -> Any:
    return client.post(URL, json=body, headers=auth())


def test_an_exemption_is_made_listed_shown_and_ended(client: TestClient, clock: FixedClock) -> None:
    made = exempt(
        client, email="OldUser@example.com", side="extra", reason="break-glass", duration="7d"
    )
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer["exemption"] == {
        "email": "olduser@example.com",
        "side": "extra",
        "reason": "break-glass",
        "owner": "api:admin",
        "expires_at": "2026-12-02T10:00:00Z",
        "created_at": "2026-11-25T10:00:00Z",
        "applies": True,
    }
    assert answer["status"] == "drift"  # alice and bob are still missing
    assert answer["drift_details"]["extra"] == [] and answer["alert_reason"] == "missing"

    listed = client.get(URL, headers=auth(READ)).json()
    assert [e["email"] for e in listed["exemptions"]] == ["olduser@example.com"]
    assert listed["ended"] == []
    document = client.get(f"/iam/drift/{AUD}", headers=auth(READ)).json()
    assert document["extra"] == [] and document["extra_total"] == 0
    assert document["exemptions"] == [answer["exemption"]]
    metrics = client.get("/metrics").text
    labels = 'audience="lms-instructors",namespace="lms",provider="cloudflare_access"'
    assert f'vault_drift_audience_exempt_members{{{labels},side="extra"}} 1.0' in metrics
    assert f'vault_drift_audience_exempt_members{{{labels},side="missing"}} 0.0' in metrics
    assert f"vault_drift_audience_members_extra{{{labels}}} 0.0" in metrics

    clock.advance(hours=1)
    gone = client.delete(f"{URL}/olduser@example.com", headers=auth())
    assert gone.status_code == 200 and gone.json()["removed"] is True
    assert gone.json()["drift_details"]["extra"] == ["olduser@example.com"]
    listed = client.get(URL, headers=auth()).json()
    assert listed["exemptions"] == []
    [ended] = listed["ended"]
    assert (ended["end_reason"], ended["ended_by"], ended["ended_at"]) == (
        "deleted",
        "api:admin",
        "2026-11-25T11:00:00Z",
    )


def test_exempting_every_drifting_member_makes_the_audience_synced(client: TestClient) -> None:
    for email, side in (
        ("olduser@example.com", "extra"),
        ("alice@example.com", "missing"),
        ("bob@example.com", "missing"),
    ):
        assert (
            exempt(
                client, email=email, side=side, reason="r", expires_at="2026-12-01T00:00:00Z"
            ).status_code
            == 201
        )
    item = client.get(f"/iam/drift/{AUD}", headers=auth()).json()
    assert (item["status"], item["alert_level"], item["drift_since"]) == ("synced", "none", None)
    summary = client.get("/iam/drift", headers=auth()).json()["summary"]
    assert summary["drift"] == 0 and summary["synced"] == 3


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"email": "a@x.com", "side": "extra", "reason": "r"}, "expires_at or duration"),
        (
            {
                "email": "a@x.com",
                "side": "extra",
                "reason": "r",
                "duration": "1d",
                "expires_at": "2026-12-01T00:00:00Z",
            },
            "expires_at or duration",
        ),
        ({"email": "a@x.com", "side": "extra", "duration": "1d"}, "reason"),
        ({"email": "a@x.com", "side": "extra", "reason": "  ", "duration": "1d"}, "reason"),
        ({"email": "a@x.com", "side": "both", "reason": "r", "duration": "1d"}, "side"),
        ({"email": "not an email", "side": "extra", "reason": "r", "duration": "1d"}, "email"),
        ({"email": "a@x.com", "side": "extra", "reason": "r", "duration": "91d"}, "90 days"),
        ({"email": "a@x.com", "side": "extra", "reason": "r", "duration": "soon"}, "duration"),
        (
            {
                "email": "a@x.com",
                "side": "extra",
                "reason": "r",
                "expires_at": "2020-01-01T00:00:00Z",
            },
            "in the future",
        ),
        ({"email": "a@x.com", "side": "extra", "reason": "r", "duration": "1d", "x": 1}, "x"),
        ([], "body"),
    ],
)
def test_bad_input_is_400_naming_the_problem(client: TestClient, body: Any, problem: str) -> None:
    answer = client.post(URL, json=body, headers=auth())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid exemption"
    assert problem in str(answer.json()["detail"])
    assert client.get(URL, headers=auth()).json()["exemptions"] == []


def test_not_json_is_400(client: TestClient) -> None:
    answer = client.post(URL, content=b"{", headers={**auth(), "content-type": "application/json"})
    assert answer.status_code == 400 and "not JSON" in answer.json()["detail"]


def test_unknown_audience_and_unknown_member_are_404(client: TestClient) -> None:
    body = {"email": "a@x.com", "side": "extra", "reason": "r", "duration": "1d"}
    for answer in (
        client.post("/iam/drift/nope/exemptions", json=body, headers=auth()),
        client.get("/iam/drift/nope/exemptions", headers=auth()),
        client.delete("/iam/drift/nope/exemptions/a@x.com", headers=auth()),
    ):
        assert answer.status_code == 404 and answer.json()["error"] == "unknown audience"
    missing = client.delete(f"{URL}/nobody@example.com", headers=auth())
    assert missing.status_code == 404 and missing.json()["error"] == "no exemption in force"


def test_the_read_token_lists_but_cannot_change_and_no_token_is_401(client: TestClient) -> None:
    body = {"email": "a@x.com", "side": "extra", "reason": "r", "duration": "1d"}
    assert client.get(URL, headers=auth(READ)).status_code == 200
    assert client.post(URL, json=body, headers=auth(READ)).status_code == 403
    assert client.delete(f"{URL}/a@x.com", headers=auth(READ)).status_code == 403
    assert client.get(URL).status_code == 401
    assert client.post(URL, json=body).status_code == 401


def test_the_openapi_document_describes_the_three_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/iam/drift/{audience}/exemptions"]) == {"get", "post"}
    assert set(paths["/iam/drift/{audience}/exemptions/{email}"]) == {"delete"}
    body = paths["/iam/drift/{audience}/exemptions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"email", "side", "reason"}
