"""The real CloudflareClient against the real simulator, over 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
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
    with CloudflareSimulator(
        account_id=ACCOUNT,
        token=TOKEN,
        per_page_cap=7,
        future_rule_types=["cloudflare_rule_of_2031"],  # to check that unknown rules pass
    ) as simulator:
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


def test_more_than_1000_rules_is_a_400_invalid_request(sim: CloudflareSimulator) -> None:
    group_id = sim.add_group("big", [email("a@x.com")])
    ip = {"ip": {"ip": "10.0.0.0/8"}}
    too_many = Group(group_id, "big", [email(f"u{i}@x.com") for i in range(1000)], [ip])

    with pytest.raises(CloudflareError) as caught:
        client_for(sim).replace_group(too_many)

    assert (caught.value.status, caught.value.code) == (400, 12130)
    assert caught.value.message == "access.api.error.invalid_request"
    assert sim.group(group_id)["include"] == [email("a@x.com")]
    client_for(sim).replace_group(replace(too_many, exclude=[]))  # 1,000 rules are allowed


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
        assert client.stats.snapshot().rate_limit_remaining == 0

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
    assert client.stats.snapshot().requests == {("GET", "5xx"): 3}
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


# -- as strict as Cloudflare -----------------------------------------------------------------

RULE_TYPES = json.loads((Path(__file__).parent / "fixtures" / "rule_types.json").read_text())


def test_every_rule_type_cloudflare_has_is_accepted_and_kept_verbatim(
    sim: CloudflareSimulator,
) -> None:
    spec_rules = RULE_TYPES["spec_2024_examples"]
    spec_types = {next(iter(rule)) for rule in spec_rules}
    newer = [{kind: {}} for kind in RULE_TYPES["newer_api_rule_types"] if kind not in spec_types]
    assert len(spec_rules) == 19 and len(newer) == 7
    assert spec_types <= set(RULE_TYPES["newer_api_rule_types"])
    assert "login_method" in RULE_TYPES["newer_api_rule_types"]
    client = client_for(sim)

    created = client.create_group("all", spec_rules, exclude=newer)

    assert sim.group(created.id)["include"] == spec_rules
    assert sim.group(created.id)["exclude"] == newer


def refused(answer: requests.Response) -> tuple[int, Any]:
    return answer.status_code, answer.json()


@pytest.mark.parametrize(
    ("rule", "pointer"),
    [
        (email("not-an-address"), "/include/1"),
        (email("two@at@x.com"), "/include/1"),
        (email("a @x.com"), "/include/1"),
        (email(" a@x.com"), "/include/1"),
        (email(""), "/include/1"),
        ({"email": {"mail": "a@x.com"}}, "/include/1"),
        ({"email": {"email": "a@x.com"}, "everyone": {}}, "/include/1"),
        ({}, "/include/1"),
        ({"rule_type_cloudflare_does_not_have": {}}, "/include/1"),
        ({"everyone": True}, "/include/1"),
        ("a@x.com", "/include/1"),
    ],
)
def test_a_rule_cloudflare_refuses_is_a_400_invalid_request(
    sim: CloudflareSimulator, rule: Any, pointer: str
) -> None:
    group_id = sim.add_group("app", [email("a@x.com")])
    body = {"name": "app", "include": [email("b@x.com"), rule]}

    for method, path in (("PUT", f"/access/groups/{group_id}"), ("POST", "/access/groups")):
        status, document = refused(api(sim, method, path, json=body))
        assert status == 400
        assert document == {
            "success": False,
            "errors": [
                {
                    "code": 12130,
                    "message": "access.api.error.invalid_request",
                    "source": {"pointer": pointer},
                }
            ],
            "messages": [],
            "result": None,
        }
    assert sim.group(group_id)["include"] == [email("a@x.com")]
    assert len(sim.groups()) == 1
    with pytest.raises(ValueError, match="refuse"):
        sim.add_group("setup", [rule])
    with pytest.raises(ValueError, match="refuse"):
        sim.set_include(group_id, [rule])


def test_a_future_rule_type_passes_once_a_test_declares_it(sim: CloudflareSimulator) -> None:
    future = {"rule_of_2031": {"anything": ["kept", 1]}}
    with pytest.raises(CloudflareError) as caught:
        client_for(sim).create_group("app", [future])
    assert (caught.value.status, caught.value.code) == (400, 12130)

    sim.future_rule_types.add("rule_of_2031")
    created = client_for(sim).create_group("app", [future])
    assert sim.group(created.id)["include"] == [future]


def test_error_answers_carry_cloudflare_codes_and_envelopes(sim: CloudflareSimulator) -> None:
    def errors(answer: requests.Response) -> tuple[int, list[tuple[int, str]]]:
        document = answer.json()
        assert document["success"] is False and document["result"] is None
        assert document["messages"] == []
        return answer.status_code, [(e["code"], e["message"]) for e in document["errors"]]

    not_found = api(sim, "GET", "/access/groups/missing")
    assert errors(not_found) == (404, [(12135, "access.api.error.not_found")])
    assert errors(api(sim, "PUT", "/access/groups/missing", json={})) == errors(not_found)
    assert errors(api(sim, "GET", "/access/policies")) == (404, [(7000, "No route for that URI")])
    assert errors(api(sim, "GET", "/access/groups", headers={"Authorization": "Bearer no"})) == (
        403,
        [(10000, "Authentication error")],
    )
    wrong_account = requests.get(
        f"{sim.base_url}/accounts/other/access/groups",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    assert errors(wrong_account) == (
        404,
        [
            (
                7003,
                "Could not route to /accounts/other/access/groups,"
                " perhaps your object identifier is invalid?",
            ),
            (7000, "No route for that URI"),
        ],
    )
    assert errors(api(sim, "POST", "/access/groups", data=b"{not json")) == (
        400,
        [(12130, "access.api.error.invalid_request")],
    )


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "TRACE"])
def test_any_method_is_answered_in_json_never_an_html_page(
    sim: CloudflareSimulator, method: str
) -> None:
    group_id = sim.add_group("app", [email("a@x.com")])

    answer = api(sim, method, f"/access/groups/{group_id}", json={"name": "x", "include": []})

    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["success"] is False
    assert answer.json()["errors"][0]["code"] == 7000
    assert sim.group(group_id)["name"] == "app"


def test_a_per_page_limit_refuses_larger_pages_naming_per_page() -> None:
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN, per_page_limit=50) as sim:
        refused_page = api(sim, "GET", "/access/groups", params={"per_page": 51})
        assert refused_page.status_code == 400
        assert refused_page.json()["errors"] == [
            {
                "code": 6008,
                "message": "Invalid request parameters",
                "error_chain": [
                    {
                        "code": 11000,
                        "message": "per_page variable must be a number between 1 and 50",
                    }
                ],
            }
        ]
        assert api(sim, "GET", "/access/groups", params={"per_page": 50}).status_code == 200
