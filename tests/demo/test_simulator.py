"""The real CloudflareClient against the real simulator, over 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.cloudflare.client import (
    CloudflareClient,
    CloudflareError,
    IncompleteListing,
    RateLimited,
)
from exporter.core.model import Group
from exporter.demo.simulator import CloudflareSimulator, Faults

ACCOUNT = "acct-1"
TOKEN = "sim-token-7c1e"


def email(address: str) -> dict[str, Any]:
    return {"email": {"email": address}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Iterator[CloudflareSimulator]:
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN, per_page_cap=7) as simulator:
        yield simulator


def client_for(sim: CloudflareSimulator, **options: Any) -> CloudflareClient:
    options = {"account_id": ACCOUNT, "token": TOKEN, "timeout": 2.0, **options}
    return CloudflareClient(base_url=sim.base_url, **options)


def api(sim: CloudflareSimulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    url = f"{sim.base_url}/accounts/{ACCOUNT}{path}"
    return requests.request(method, url, headers=headers, timeout=2, **kwargs)


def control(sim: CloudflareSimulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    root = sim.base_url.removesuffix("/client/v4")
    return requests.request(method, f"{root}{path}", timeout=2, **kwargs)


def test_create_list_get_replace_round_trip(sim: CloudflareSimulator) -> None:
    client = client_for(sim)
    unknown = {"cloudflare_rule_of_2031": {"anything": ["kept", 1]}}

    created = client.create_group("app", [email("a@x.com"), unknown], require=[{"everyone": {}}])
    assert client.list_groups() == [created]
    assert client.get_group(created.id) == created

    edited = Group(created.id, "app", [email("b@x.com"), unknown], [email("c@x.com")], [], False)
    assert client.replace_group(edited) == edited
    assert client.get_group(created.id) == edited
    stored = sim.group(created.id)
    assert stored["include"] == [email("b@x.com"), unknown]
    assert stored["exclude"] == [email("c@x.com")]
    assert stored["created_at"] <= stored["updated_at"]
    assert [(m, s) for m, _, s in sim.request_log] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 200),
        ("PUT", 200),
        ("GET", 200),
    ]


def test_listing_is_paginated_by_the_capped_per_page_in_insertion_order(
    sim: CloudflareSimulator,
) -> None:
    ids = [sim.add_group(f"g{i:02}", [email(f"u{i}@x.com")]) for i in range(20)]

    groups = client_for(sim, per_page=1000).list_groups()

    assert [g.id for g in groups] == ids
    assert sim.request_count == 3  # 7 + 7 + 6
    page = api(sim, "GET", "/access/groups", params={"page": 3, "per_page": 50}).json()
    assert page["result_info"] == {
        "page": 3,
        "per_page": 7,
        "count": 6,
        "total_count": 20,
        "total_pages": 3,
    }


def test_put_is_a_full_replace_that_keeps_is_default_as_sent_and_validates(
    sim: CloudflareSimulator,
) -> None:
    group_id = sim.add_group("app", [email("a@x.com")], exclude=[email("z@x.com")])
    assert api(sim, "GET", f"/access/groups/{group_id}").json()["result"]["is_default"] is False

    body = {"name": "renamed", "include": [email("b@x.com")], "is_default": True}
    answer = api(sim, "PUT", f"/access/groups/{group_id}", json=body)
    assert answer.status_code == 200 and answer.json()["result"]["is_default"] is True
    assert sim.group(group_id)["exclude"] == []
    assert api(sim, "GET", f"/access/groups/{group_id}").json()["result"]["is_default"] is True
    # a full replace: a PUT without is_default clears the flag
    api(sim, "PUT", f"/access/groups/{group_id}", json={"name": "renamed", "include": []})
    assert sim.group(group_id)["is_default"] is False

    bad_bodies: list[dict[str, Any]] = [
        {"include": []},
        {"name": "x"},
        {"name": "x", "include": ["not a rule"]},
        {"name": "x", "include": [], "is_default": "yes"},
    ]
    for bad in bad_bodies:
        answer = api(sim, "PUT", f"/access/groups/{group_id}", json=bad)
        assert answer.status_code == 400
        assert answer.json()["success"] is False
        assert answer.json()["errors"][0]["message"]
    assert api(sim, "GET", "/access/groups/missing").status_code == 404


def test_more_than_1000_rules_is_a_400_with_a_clear_message(sim: CloudflareSimulator) -> None:
    group_id = sim.add_group("big", [email("a@x.com")])
    too_many = Group(group_id, "big", [email(f"u{i}@x.com") for i in range(1000)], [{"ip": {}}])

    with pytest.raises(CloudflareError, match="1001") as caught:
        client_for(sim).replace_group(too_many)

    assert caught.value.status == 400
    assert "at most 1000" in caught.value.message
    assert sim.group(group_id)["include"] == [email("a@x.com")]


def test_a_wrong_token_is_403_code_10000_and_a_wrong_account_404(
    sim: CloudflareSimulator,
) -> None:
    with pytest.raises(CloudflareError) as caught:
        client_for(sim, token="not-the-token").list_groups()
    assert (caught.value.status, caught.value.code) == (403, 10000)
    assert caught.value.message == "Authentication error"
    assert api(sim, "GET", "/access/groups", headers={"Authorization": ""}).status_code == 403

    with pytest.raises(CloudflareError) as wrong_account:
        client_for(sim, account_id="someone-else").list_groups()
    assert wrong_account.value.status == 404


def test_past_the_budget_every_call_gets_429_for_the_block() -> None:
    clock = FakeClock()
    limits: dict[str, Any] = {
        "request_budget": 5,
        "budget_window_seconds": 60,
        "block_seconds": 120,
    }
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN, clock=clock, **limits) as sim:
        first = api(sim, "GET", "/access/groups")
        assert first.headers["Ratelimit"] == '"default";r=4;t=60'
        assert first.headers["Ratelimit-Policy"] == '"default";q=5;w=60'
        client = client_for(sim)
        for _ in range(4):
            client.list_groups()
        assert client.stats.snapshot()["rate_limit_remaining"] == 0

        with pytest.raises(RateLimited) as caught:
            client.list_groups()
        assert caught.value.retry_after_seconds == 120

        clock.now += 100  # the window has slid, but the block still runs
        blocked = api(sim, "GET", "/access/groups")
        assert (blocked.status_code, blocked.headers["retry-after"]) == (429, "20")
        clock.now += 20
        assert api(sim, "GET", "/access/groups").status_code == 200
        assert sim.request_count == 8


def test_reset_budget_lifts_the_block() -> None:
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN, request_budget=1) as sim:
        api(sim, "GET", "/access/groups")
        assert api(sim, "GET", "/access/groups").status_code == 429
        sim.reset_budget()
        assert api(sim, "GET", "/access/groups").status_code == 200


def test_repeat_page_fault_is_an_incomplete_listing(sim: CloudflareSimulator) -> None:
    for i in range(10):
        sim.add_group(f"g{i}", [])
    sim.faults = Faults(repeat_page=True)

    with pytest.raises(IncompleteListing, match="repeats"):
        client_for(sim).list_groups()


@pytest.mark.parametrize("count", [0, 7, 10])
def test_short_total_fault_is_an_incomplete_listing(sim: CloudflareSimulator, count: int) -> None:
    for i in range(count):
        sim.add_group(f"g{i}", [])
    sim.faults = Faults(short_total=True)

    with pytest.raises(IncompleteListing, match="total_count"):
        client_for(sim).list_groups()


def test_truncated_json_fault_is_a_cloudflare_error(sim: CloudflareSimulator) -> None:
    sim.add_group("g", [email("a@x.com")])
    sim.faults = Faults(rate_truncated=1.0)

    with pytest.raises(CloudflareError, match="invalid JSON") as caught:
        client_for(sim).list_groups()
    assert caught.value.status == 200


def test_5xx_fault_is_retried_then_reported_with_its_status(sim: CloudflareSimulator) -> None:
    sim.faults = Faults(rate_5xx=1.0, seed=3)

    client = client_for(sim)

    with pytest.raises(CloudflareError, match="invalid JSON") as caught:
        client.list_groups()

    assert caught.value.status in (502, 503)
    assert sim.request_count == 3  # the first try and two retries
    assert client.stats.snapshot()["requests"] == {("GET", "5xx"): 3}
    assert {status for _, _, status in sim.request_log} <= {502, 503}


def test_5xx_fault_on_post_is_not_retried(sim: CloudflareSimulator) -> None:
    sim.faults = Faults(rate_5xx=1.0)

    with pytest.raises(CloudflareError):
        client_for(sim).create_group("x", [])
    assert sim.request_count == 1
    assert sim.groups() == []


def test_timeout_fault_is_a_cloudflare_error_without_status(sim: CloudflareSimulator) -> None:
    sim.faults = Faults(rate_timeout=1.0, timeout_seconds=1.0)

    with pytest.raises(CloudflareError, match=r"timeout after 0\.5s") as caught:
        client_for(sim, timeout=0.5).list_groups()
    assert caught.value.status is None


def test_spurious_429_fault_pauses_the_client(sim: CloudflareSimulator) -> None:
    sim.faults = Faults(rate_429=1.0, retry_after_seconds=7)
    client = client_for(sim)

    with pytest.raises(RateLimited) as caught:
        client.list_groups()
    with pytest.raises(RateLimited):
        client.list_groups()
    assert caught.value.retry_after_seconds == 7
    assert sim.request_count == 1


def test_a_throttled_group_is_hidden_from_the_listing_and_always_answers_429(
    sim: CloudflareSimulator,
) -> None:
    shown = sim.add_group("shown", [email("a@x.io")])
    hidden = sim.add_group("hidden", [email("b@x.io")])
    control(sim, "POST", "/_sim/faults", json={"throttled_group": hidden, "retry_after_seconds": 1})

    listing = api(sim, "GET", "/access/groups").json()
    assert [g["id"] for g in listing["result"]] == [shown]
    assert listing["result_info"]["total_count"] == 1
    for method, body in (("GET", None), ("PUT", {"name": "hidden", "include": []})):
        answer = api(sim, method, f"/access/groups/{hidden}", json=body)
        assert (answer.status_code, answer.headers["retry-after"]) == (429, "1")
        assert answer.json()["errors"][0]["code"] == 971
    assert api(sim, "GET", f"/access/groups/{shown}").status_code == 200
    assert sim.group(hidden)["include"] == [email("b@x.io")]  # the PUT was not applied


def test_faults_are_drawn_from_the_seed(sim: CloudflareSimulator) -> None:
    def statuses() -> list[int]:
        return [api(sim, "GET", "/access/groups").status_code for _ in range(30)]

    sim.faults = Faults(rate_5xx=0.5, seed=11)
    first = statuses()
    sim.faults = Faults(rate_5xx=0.5, seed=11)
    assert statuses() == first
    assert 200 in first and {502, 503} & set(first)


def test_control_routes_need_no_token_and_are_not_api_requests(sim: CloudflareSimulator) -> None:
    group_id = sim.add_group("app", [email("a@x.com")])

    answer = control(sim, "POST", "/_sim/faults", json={"short_total": True, "seed": 4})
    assert answer.status_code == 200
    assert sim.faults == Faults(short_total=True, seed=4)
    assert control(sim, "POST", "/_sim/faults", json={"rate_lava": 1}).status_code == 400

    edited = [email("manual@x.com"), {"email_domain": {"domain": "x.com"}}]
    assert control(sim, "POST", f"/_sim/groups/{group_id}/include", json=edited).ok
    assert sim.group(group_id)["include"] == edited
    assert control(sim, "POST", "/_sim/groups/nope/include", json=[]).status_code == 404
    assert control(sim, "POST", f"/_sim/groups/{group_id}/include", json={}).status_code == 400

    assert [g["id"] for g in control(sim, "GET", "/_sim/groups").json()] == [group_id]
    assert control(sim, "GET", "/_sim/stats").json() == {"request_count": 0}
    assert sim.request_count == 0


def test_dashboard_edits_and_deletes_show_through_the_api(sim: CloudflareSimulator) -> None:
    client = client_for(sim)
    group_id = sim.add_group("app", [email("a@x.com")], group_id="fixed-id")
    sim.set_include(group_id, [email("b@x.com")])

    assert client.get_group("fixed-id").include == [email("b@x.com")]
    sim.delete_group(group_id)
    with pytest.raises(CloudflareError) as caught:
        client.get_group("fixed-id")
    assert caught.value.status == 404


def test_stop_returns_promptly_while_a_request_hangs() -> None:
    sim = CloudflareSimulator(account_id=ACCOUNT, token=TOKEN).start()
    sim.faults = Faults(rate_timeout=1.0, timeout_seconds=30)
    with pytest.raises(CloudflareError):
        client_for(sim, timeout=0.2).list_groups()
    sim.stop()  # must not wait out the 30 s hang (pytest-timeout would fail this test)
