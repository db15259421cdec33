"""The simulated ``revoke_user`` is as strict as Cloudflare's schema says, and the client
speaks it (operation ``zero-trust-organization-revoke-all-access-tokens-for-a-user``,
docs/sessions.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from test_simulator import ACCOUNT, TOKEN, api, client_for, control

from exporter.cloudflare.client import CloudflareError
from exporter.demo.simulator import CloudflareSimulator

PATH = "/access/organizations/revoke_user"
JANE = "jane@corp.example"


@pytest.fixture
def sim() -> Iterator[CloudflareSimulator]:
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN) as simulator:
        simulator.add_group("lms", [{"email": {"email": "Jane@Corp.example"}}])
        yield simulator


def test_a_member_logs_in_and_revoke_user_ends_every_session(sim: CloudflareSimulator) -> None:
    assert sim.login(JANE) and sim.login(JANE)
    assert not sim.login("nobody@corp.example")  # no group lets them in

    answer = api(sim, "POST", PATH, json={"email": "JANE@corp.example"})

    assert answer.status_code == 200
    assert answer.json() == {"success": True, "errors": [], "messages": [], "result": True}
    assert sim.sessions.live(JANE) == 0
    [call] = sim.sessions.revocations()
    assert (call["email"], call["ended"], call["devices"]) == ("JANE@corp.example", 2, False)
    seen = control(sim, "GET", "/_sim/sessions").json()
    assert seen["sessions"] == {} and seen["revocations"][0]["ended"] == 2


def test_revoking_an_email_without_a_session_succeeds_and_twice_is_harmless(
    sim: CloudflareSimulator,
) -> None:
    client = client_for(sim)
    client.revoke_user(JANE)
    client.revoke_user(JANE)
    assert [c["ended"] for c in sim.sessions.revocations()] == [0, 0]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/email"),
        ({"email": 7}, "/email"),
        ({"email": ""}, "/email"),
        ({"email": JANE, "devices": "yes"}, "/devices"),
        ({"email": JANE, "warp_session_reauth": 1}, "/warp_session_reauth"),
        ({"email": JANE, "user_uid": 5}, "/user_uid"),
        ([JANE], None),
        (None, None),
    ],
)
def test_a_body_the_schema_refuses_is_a_400_code_12130(
    sim: CloudflareSimulator, body: Any, pointer: str | None
) -> None:
    answer = api(sim, "POST", PATH, json=body)
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert (error["code"], error["message"]) == (12130, "access.api.error.invalid_request")
    assert error.get("source", {}).get("pointer") == pointer
    assert sim.sessions.revocations() == []


def test_not_json_and_a_bad_devices_query_are_refused(sim: CloudflareSimulator) -> None:
    assert api(sim, "POST", PATH, data=b"{email").status_code == 400
    bad = api(sim, "POST", PATH, params={"devices": "maybe"}, json={"email": JANE})
    assert bad.status_code == 400
    ok = api(sim, "POST", PATH, params={"devices": "true"}, json={"email": JANE})
    assert ok.status_code == 200 and sim.sessions.revocations()[0]["devices"] is True


def test_auth_route_and_account_answers_are_cloudflare_s(sim: CloudflareSimulator) -> None:
    url = f"{sim.base_url}/accounts/{ACCOUNT}{PATH}"
    anonymous = requests.post(url, json={"email": JANE}, timeout=2)
    assert anonymous.status_code == 403 and anonymous.json()["errors"][0]["code"] == 10000
    assert api(sim, "GET", PATH).json()["errors"][0]["code"] == 7000
    other = requests.post(
        f"{sim.base_url}/accounts/other{PATH}",
        json={"email": JANE},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    assert other.status_code == 404 and other.json()["errors"][0]["code"] == 7003


def test_a_token_without_the_access_write_permission_gets_403(sim: CloudflareSimulator) -> None:
    sim.sessions.denied.add(TOKEN)
    with pytest.raises(CloudflareError) as refused:
        client_for(sim).revoke_user(JANE)
    assert (refused.value.status, refused.value.code) == (403, 10000)
    assert TOKEN not in str(refused.value)
    assert sim.sessions.revocations() == []
