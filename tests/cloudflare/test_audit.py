"""The audit-log reader against `responses`, with entries in Cloudflare's documented shapes
(fixtures/audit_logs_page_*.json: the v1 schema's fields, and the entry of Cloudflare's D1
docs for a resource that is not a group)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from test_client import ACCOUNT, BASE, TOKEN, FakeClock, fixture, make_client

from exporter.cloudflare.audit import group_change_from_json, member_changes
from exporter.cloudflare.client import CloudflareError, RateLimited

AUDIT_URL = f"{BASE}/accounts/{ACCOUNT}/audit_logs"
SINCE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 25, 10, 2, tzinfo=UTC)
GROUPS = {"grp-1", "grp-2"}


def page_matcher(number: int) -> Any:
    return responses.matchers.query_param_matcher({"page": str(number)}, strict_match=False)


def entry(**fields: Any) -> dict[str, Any]:
    base = copy.deepcopy(fixture("audit_logs_page_1.json")["result"][0])
    base.update(fields)
    return base


@responses.activate
def test_reads_every_page_oldest_first_and_keeps_the_groups_entries() -> None:
    responses.get(AUDIT_URL, json=fixture("audit_logs_page_1.json"), match=[page_matcher(1)])
    responses.get(AUDIT_URL, json=fixture("audit_logs_page_2.json"), match=[page_matcher(2)])
    client = make_client()
    listing = client.audit_log().group_changes(SINCE, BEFORE, GROUPS)

    params = responses.calls[0].request.params  # type: ignore[attr-defined]
    assert params == {
        "since": "2026-11-25T09:00:00Z",
        "before": "2026-11-25T10:02:00Z",
        "direction": "asc",
        "per_page": "1000",
        "page": "1",
    }
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    # the server served 2 a page (result_info.per_page): a full page means ask for the next
    assert [c.request.params["page"] for c in responses.calls] == ["1", "2"]  # type: ignore[attr-defined]
    assert (listing.pages, listing.entries, listing.skipped) == (2, 3, 0)
    assert listing.read_until == BEFORE
    manual, by_vault_api = listing.changes  # the D1 entry is about no group: dropped
    assert manual.group_id == "grp-1" and manual.interface == "UI"
    assert manual.actor_email == "jane@corp.example" and manual.actor_type == "user"
    assert manual.at == datetime(2026, 11, 25, 9, 48, 12, 752000, tzinfo=UTC)
    assert manual.added == {"contractor@example.org"} and manual.removed == {"ops@example.com"}
    # values as JSON text (oldValue / newValue) are read too
    assert by_vault_api.added == frozenset() and by_vault_api.removed == {"dev2@example.com"}
    assert client.stats.snapshot().audit == {("GET", "2xx"): 2}
    assert client.stats.snapshot().requests == {}  # not counted as Access calls


def test_values_that_cannot_be_read_name_nobody() -> None:
    full = json.dumps(entry()["newValueJson"])
    cases = {
        "truncated": {
            "oldValueJson": {},
            "newValueJson": {},
            "oldValue": full[:40],
            "newValue": full,
        },
        "not json": {
            "oldValueJson": {},
            "newValueJson": {},
            "oldValue": "changed",
            "newValue": full,
        },
        "missing": {"oldValueJson": {}, "newValueJson": {}, "oldValue": "", "newValue": ""},
        "no include": {"oldValueJson": {"name": "x"}},
        "rules not objects": {"newValueJson": {"include": ["a@x.com"]}},
    }
    for name, fields in cases.items():
        change = group_change_from_json(entry(**fields), GROUPS)
        assert change is not None, name
        assert (change.added, change.removed) == (None, None), name
        assert not change.names("extra", "contractor@example.org"), name


def test_a_creation_adds_everyone_and_a_deletion_removes_everyone() -> None:
    new = entry()["newValueJson"]
    created = {
        "action": {"type": "create"},
        "oldValueJson": {},
        "oldValue": "",
        "newValueJson": new,
    }
    assert member_changes(entry(**created), "create") == (
        {"root@example.com", "contractor@example.org"},
        frozenset(),
    )
    deleted = {"newValueJson": {}, "newValue": ""}
    assert member_changes(entry(**deleted), "delete")[1] == {"root@example.com", "ops@example.com"}


@responses.activate
def test_malformed_entries_are_skipped_never_fatal() -> None:
    body = fixture("audit_logs_page_2.json")
    body["result"] = [
        "not an entry",
        entry(id=None),
        entry(when="yesterday"),
        entry(resource="grp-1"),
        entry(id="ok-1"),
    ]
    body["result_info"] = {"page": 1, "per_page": 1000, "count": 5}
    responses.get(AUDIT_URL, json=body)
    listing = make_client().audit_log().group_changes(SINCE, BEFORE, GROUPS)
    assert [c.audit_log_id for c in listing.changes] == ["ok-1"]
    assert listing.skipped == 3  # the fourth names no resource: about no group, not malformed


@responses.activate
def test_a_token_without_audit_rights_is_a_403_with_cloudflares_code() -> None:
    responses.get(AUDIT_URL, json=fixture("error_auth.json"), status=403)
    client = make_client()
    with pytest.raises(CloudflareError) as raised:
        client.audit_log().group_changes(SINCE, BEFORE, GROUPS)
    assert (raised.value.status, raised.value.code) == (403, 10000)
    assert TOKEN not in str(raised.value) and "/audit_logs" in str(raised.value)
    assert client.stats.snapshot().audit == {("GET", "4xx"): 1}


@responses.activate
def test_a_page_cut_short_fails_the_listing() -> None:
    text = json.dumps(fixture("audit_logs_page_1.json"))
    responses.get(AUDIT_URL, body=text[: len(text) // 2], content_type="application/json")
    with pytest.raises(CloudflareError, match="invalid JSON"):
        make_client().audit_log().group_changes(SINCE, BEFORE, GROUPS)


@responses.activate
def test_a_429_pauses_every_call_of_the_token() -> None:
    responses.get(
        AUDIT_URL,
        json=fixture("error_rate_limited.json"),
        status=429,
        headers={"retry-after": "120"},
    )
    clock = FakeClock()
    client = make_client(clock)
    with pytest.raises(RateLimited):
        client.audit_log().group_changes(SINCE, BEFORE, GROUPS)
    assert client.pause_left() == pytest.approx(120.0)  # the Access calls wait too
    with pytest.raises(RateLimited):  # refused locally, without a request
        client.audit_log().group_changes(SINCE, BEFORE, GROUPS)
    assert len(responses.calls) == 1


@responses.activate
def test_the_page_cap_leaves_the_rest_for_the_next_cycle() -> None:
    def full_page(number: int) -> dict[str, Any]:
        items = [
            entry(id=f"p{number}-{i}", when=f"2026-11-25T09:{number:02d}:{i:02d}Z")
            for i in range(2)
        ]
        return {
            "success": True,
            "errors": [],
            "messages": [],
            "result": items,
            "result_info": {"page": number, "per_page": 2, "count": 2, "total_count": 10},
        }

    for number in (1, 2):
        responses.get(AUDIT_URL, json=full_page(number), match=[page_matcher(number)])
    listing = make_client().audit_log(max_pages=2).group_changes(SINCE, BEFORE, GROUPS)
    assert len(responses.calls) == 2 and listing.pages == 2
    assert listing.read_until == datetime(2026, 11, 25, 9, 2, 1, tzinfo=UTC)  # the last read
