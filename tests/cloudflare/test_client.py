"""CloudflareClient against `responses`, with recorded-shape envelopes in fixtures/."""

from __future__ import annotations

import io
import json
import logging
import weakref
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from exporter.cloudflare.client import (
    CloudflareClient,
    CloudflareError,
    IncompleteListing,
    RateLimited,
)
from exporter.cloudflare.ratelimit import ClientStats, RateLimitGate, retry_policy
from exporter.cloudflare.wire import group_from_json
from exporter.core.model import Group, Rule

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://api.cloudflare.test/client/v4"
ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "tok-Sup3rS3cret-9f8e7d6c"
GROUPS_URL = f"{BASE}/accounts/{ACCOUNT}/access/groups"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeClock:
    """Monotonic time that only moves when a test says so, or when the client sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


WALL = 1_700_000_000.0  # 2023-11-14T22:13:20Z at FakeClock's 1000.0


def make_client(clock: FakeClock | None = None, **options: Any) -> CloudflareClient:
    clock = clock or FakeClock()
    return CloudflareClient(
        base_url=BASE,
        account_id=ACCOUNT,
        token=TOKEN,
        clock=clock,
        wall_clock=lambda: WALL + clock.now - 1000.0,
        sleep=clock.sleep,
        **options,
    )


def page(number: int, ids: list[str], **info: Any) -> dict[str, Any]:
    groups = [{"id": i, "name": f"n-{i}", "include": [], "exclude": [], "require": []} for i in ids]
    result_info = {"page": number, "count": len(ids), **info}
    return {
        "success": True,
        "errors": [],
        "messages": [],
        "result": groups,
        "result_info": result_info,
    }


def add_page(number: int, body: dict[str, Any], **kwargs: Any) -> None:
    matcher = responses.matchers.query_param_matcher({"page": str(number)}, strict_match=False)
    responses.get(GROUPS_URL, json=body, match=[matcher], **kwargs)


def requested_pages() -> list[str]:
    return [call.request.params["page"] for call in responses.calls]  # type: ignore[attr-defined]


# -- pagination ------------------------------------------------------------------------------


@responses.activate
def test_lists_every_group_over_three_pages_with_full_rules() -> None:
    for number in (1, 2, 3):
        add_page(number, fixture(f"groups_page_{number}.json"))

    groups = make_client(per_page=2).list_groups()

    assert [g.name for g in groups] == [f"app-{i}.example.com" for i in range(1, 6)]
    assert groups[3].exclude == [{"ip": {"ip": "10.0.0.0/8"}}]
    assert groups[3].require == [{"everyone": {}}]
    assert groups[0].include[1] == {"email_domain": {"domain": "partner.example"}}
    assert requested_pages() == ["1", "2", "3"]
    assert all(c.request.params["per_page"] == "2" for c in responses.calls)  # type: ignore[attr-defined]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_server_capping_per_page_decides_what_a_short_page_is() -> None:
    # Asked for 1000, the server gives 2 a page and no total_pages: 2 items is a full page.
    add_page(1, page(1, ["a", "b"], per_page=2, total_count=5))
    add_page(2, page(2, ["c", "d"], per_page=2, total_count=5))
    add_page(3, page(3, ["e"], per_page=2, total_count=5))

    groups = make_client(per_page=1000).list_groups()

    assert [g.id for g in groups] == ["a", "b", "c", "d", "e"]
    assert responses.calls[0].request.params["per_page"] == "1000"  # type: ignore[attr-defined]


@responses.activate
def test_stops_on_a_short_page_without_total_pages() -> None:
    add_page(1, page(1, ["a", "b", "c"], per_page=3))
    add_page(2, page(2, ["d"], per_page=3))

    assert [g.id for g in make_client(per_page=3).list_groups()] == ["a", "b", "c", "d"]
    assert requested_pages() == ["1", "2"]


@responses.activate
def test_stops_on_a_short_page_against_the_asked_size_when_result_info_is_absent() -> None:
    body = page(1, ["a"])
    del body["result_info"]
    add_page(1, body)

    assert [g.id for g in make_client(per_page=2).list_groups()] == ["a"]
    assert len(responses.calls) == 1


@responses.activate
def test_stops_on_an_empty_page() -> None:
    add_page(1, page(1, ["a", "b"], per_page=2))
    add_page(2, page(2, ["c", "d"], per_page=2))
    add_page(3, page(3, [], per_page=2))

    assert len(make_client(per_page=2).list_groups()) == 4
    assert requested_pages() == ["1", "2", "3"]


@responses.activate
def test_the_client_keeps_no_group_the_caller_has_dropped() -> None:
    # A page of 100 groups x 1,000 rules is ~50 MB of objects: a full check digests each
    # group and drops it, so the client must not hold the rest of the page (or the last one).
    add_page(1, page(1, ["a", "b", "c"], per_page=3))
    add_page(2, page(2, ["d"], per_page=3))
    dropped: list[weakref.ref[Group]] = []
    still_alive = []
    for group in make_client(per_page=3).iter_groups():
        still_alive.append([ref().id for ref in dropped if ref() is not None])  # type: ignore[union-attr]
        dropped.append(weakref.ref(group))
        del group

    assert still_alive == [[], [], [], []]


@responses.activate
def test_a_page_repeating_ids_is_an_incomplete_listing() -> None:
    add_page(1, page(1, ["a", "b", "a"], per_page=3, total_count=4))

    with pytest.raises(IncompleteListing, match="repeats group id a"):
        make_client(per_page=3).list_groups()


@responses.activate
def test_a_server_ignoring_page_is_detected_and_names_the_page_size_setting() -> None:
    # Page 2 repeats page 1: no group past the first page can ever be listed.
    add_page(1, page(1, ["a", "b"], per_page=2, total_count=4))
    add_page(2, page(1, ["a", "b"], per_page=2, total_count=4))

    with pytest.raises(IncompleteListing) as caught:
        make_client(per_page=2).list_groups()

    assert "page 2 repeats group a of page 1" in caught.value.message
    assert "ignore `page`" in caught.value.message
    assert "VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE (now 2)" in caught.value.message


@responses.activate
def test_fewer_groups_than_total_count_is_an_incomplete_listing() -> None:
    add_page(1, page(1, ["a", "b"], per_page=2, total_count=4, total_pages=2))
    add_page(2, page(2, ["c"], per_page=2, total_count=4, total_pages=2))

    with pytest.raises(IncompleteListing, match=r"3 groups, result_info\.total_count is 4"):
        make_client(per_page=2).list_groups()


@pytest.mark.parametrize(
    "result_info",
    [
        "page 1 of 3",
        {"page": 1, "per_page": "many"},
        {"page": 1, "per_page": 0},
        {"page": 1, "total_count": -1},
        {"page": 2, "per_page": 2},  # not the page asked for
        {"page": True},
    ],
)
@responses.activate
def test_malformed_result_info_is_an_incomplete_listing(result_info: Any) -> None:
    body = page(1, ["a", "b"])
    body["result_info"] = result_info
    add_page(1, body)

    with pytest.raises(IncompleteListing):
        make_client(per_page=2).list_groups()


@responses.activate
def test_a_listing_result_that_is_not_groups_is_an_error() -> None:
    add_page(1, {"success": True, "errors": [], "messages": [], "result": [{"name": "no id"}]})

    with pytest.raises(CloudflareError, match="malformed group") as caught:
        make_client().list_groups()
    assert caught.value.status == 200


# -- per_page refused: fall back to 50, then 25 ----------------------------------------------


def add_sized_page(per_page: int, body: dict[str, Any], status: int = 200) -> None:
    """An answer to page 1 asked with this per_page (Cloudflare's shape of a refused one:
    code 6008 with an error_chain, as its billing listing answers per_page=1001)."""
    matcher = responses.matchers.query_param_matcher(
        {"page": "1", "per_page": str(per_page)}, strict_match=False
    )
    responses.get(GROUPS_URL, json=body, status=status, match=[matcher])


def asked_sizes() -> list[str]:
    return [call.request.params["per_page"] for call in responses.calls]  # type: ignore[attr-defined]


@responses.activate
def test_a_400_naming_per_page_falls_back_to_50_and_keeps_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vault_drift.cloudflare")
    add_sized_page(1000, fixture("error_per_page.json"), status=400)
    add_sized_page(50, page(1, ["a", "b"], per_page=50))
    client = make_client()

    assert [g.id for g in client.list_groups()] == ["a", "b"]
    assert [g.id for g in client.list_groups()] == ["a", "b"]

    assert asked_sizes() == ["1000", "50", "50"]
    [warning] = caplog.records
    assert "per_page=1000" in warning.getMessage()
    assert "50 a page for the rest of the process" in warning.getMessage()
    assert "per_page variable must be a number between 1 and 50" in warning.getMessage()
    assert "VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE=50" in warning.getMessage()


@responses.activate
def test_then_25_and_an_error_once_25_is_refused_too() -> None:
    for size in (1000, 50, 25):
        add_sized_page(size, fixture("error_per_page.json"), status=400)
    client = make_client()

    with pytest.raises(CloudflareError) as caught:
        client.list_groups()

    assert asked_sizes() == ["1000", "50", "25"]
    assert (caught.value.status, caught.value.code) == (400, 6008)
    assert caught.value.message == (
        "Invalid request parameters: per_page variable must be a number between 1 and 50"
    )
    responses.replace(responses.GET, GROUPS_URL, json=page(1, ["a"], per_page=25))
    assert [g.id for g in client.list_groups()] == ["a"]
    assert asked_sizes()[-1] == "25"


@responses.activate
def test_a_configured_size_below_50_only_falls_back_to_25() -> None:
    add_sized_page(30, fixture("error_per_page.json"), status=400)
    add_sized_page(25, page(1, ["a"], per_page=25))

    assert [g.id for g in make_client(per_page=30).list_groups()] == ["a"]
    assert asked_sizes() == ["30", "25"]


@pytest.mark.parametrize(
    ("status", "document"),
    [
        (400, fixture("error_not_found.json")),  # a 400 that does not name per_page
        (403, fixture("error_per_page.json")),  # names it, but not a 400
    ],
)
@responses.activate
def test_other_refusals_do_not_change_the_page_size(status: int, document: Any) -> None:
    responses.get(GROUPS_URL, json=document, status=status)

    with pytest.raises(CloudflareError):
        make_client().list_groups()
    assert asked_sizes() == ["1000"]


@responses.activate
def test_per_page_refused_past_page_1_is_an_error_not_a_new_size() -> None:
    # A new size would shift the pages under the groups already handed out.
    add_page(1, page(1, ["a", "b"], per_page=2, total_count=3))
    add_page(2, fixture("error_per_page.json"), status=400)
    client = make_client(per_page=1000)

    with pytest.raises(CloudflareError, match="per_page"):
        client.list_groups()
    assert asked_sizes() == ["1000", "1000"]


# -- the listing is parsed as it arrives -------------------------------------------------------


class CountingBody(io.RawIOBase):
    """A response body that counts the bytes the client has read from it."""

    def __init__(self, data: bytes) -> None:
        self._data, self.read_bytes = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self.read_bytes : self.read_bytes + len(buffer)]
        buffer[: len(piece)] = piece
        self.read_bytes += len(piece)
        return len(piece)


def big_page(groups: int, rules: int) -> dict[str, Any]:
    ids = [f"g{i}" for i in range(groups)]
    body = page(1, ids, per_page=groups, total_count=groups, total_pages=1)
    for i, group in enumerate(body["result"]):
        group["include"] = [{"email": {"email": f"u{j}.{i}@example.com"}} for j in range(rules)]
    return body


@responses.activate
def test_a_group_is_handed_out_before_its_page_is_read_whole() -> None:
    # Memory must not grow with the page size Cloudflare serves: a page is not parsed whole.
    data = json.dumps(big_page(40, 1000)).encode()
    body = CountingBody(data)
    responses.get(GROUPS_URL, body=io.BufferedReader(body), content_type="application/json")
    read_at_each_group = []

    for group in make_client().iter_groups():
        read_at_each_group.append(body.read_bytes)
        assert len(group.include) == 1000

    assert len(read_at_each_group) == 40
    assert read_at_each_group[0] < len(data) / 4
    assert read_at_each_group[-1] == len(data)


class BrokenBody(CountingBody):
    """A body whose connection fails once ``at`` bytes were read."""

    def __init__(self, data: bytes, at: int, error: Exception) -> None:
        super().__init__(data)
        self._at, self._error = at, error

    def readinto(self, buffer: Any) -> int:
        if self.read_bytes >= self._at:
            raise self._error
        return super().readinto(memoryview(buffer)[: self._at - self.read_bytes])


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionResetError(), r"connection error while reading the answer \(ChunkedEncoding"),
        (TimeoutError(), r"timeout after 7s while reading the answer"),
    ],
)
@responses.activate
def test_a_connection_lost_while_a_page_arrives_is_an_error(error: Exception, reason: str) -> None:
    data = json.dumps(big_page(3, 100)).encode()
    body = BrokenBody(data, len(data) // 2, error)
    responses.get(GROUPS_URL, body=io.BufferedReader(body), content_type="application/json")

    with pytest.raises(CloudflareError, match=reason) as caught:
        list(make_client(timeout=7).iter_groups())
    assert caught.value.status == 200


@responses.activate
def test_result_info_after_the_result_as_cloudflare_orders_it() -> None:
    first = page(1, ["a", "b"], per_page=2, total_count=3)
    second = page(2, ["c"], per_page=2, total_count=3)
    for number, document in ((1, first), (2, second)):
        reordered = {key: document[key] for key in ("result", "result_info", "success", "errors")}
        add_page(number, reordered)

    assert [g.id for g in make_client().list_groups()] == ["a", "b", "c"]
    assert requested_pages() == ["1", "2"]


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        ({"success": False, "errors": [{"code": 7003, "message": "No route"}]}, "No route"),
        ({"errors": []}, "not a Cloudflare envelope"),
        ({"success": True, "result_info": {"page": 2}}, "result_info says page 2"),
    ],
)
@responses.activate
def test_an_envelope_that_turns_bad_after_the_groups_fails_the_listing(
    tail: dict[str, Any], error: str
) -> None:
    # The groups already handed out must be discarded: the listing raises.
    responses.get(GROUPS_URL, json={"result": page(1, ["a", "b"])["result"], **tail})
    handed_out = []

    with pytest.raises(CloudflareError, match=error):
        for group in make_client().iter_groups():
            handed_out.append(group.id)
    assert handed_out == ["a", "b"]


@responses.activate
def test_a_listing_cut_inside_a_group_is_invalid_json() -> None:
    data = json.dumps(big_page(3, 100)).encode()
    responses.get(GROUPS_URL, body=data[: len(data) * 2 // 3], content_type="application/json")

    with pytest.raises(CloudflareError, match=r"invalid JSON in response \(application/json\)"):
        list(make_client().iter_groups())


@responses.activate
def test_a_listing_that_is_not_an_object_is_not_an_envelope() -> None:
    responses.get(GROUPS_URL, json=[1, 2])

    with pytest.raises(CloudflareError, match="not a Cloudflare envelope") as caught:
        make_client().list_groups()
    assert caught.value.status == 200


# -- groups ----------------------------------------------------------------------------------


@responses.activate
def test_get_group_keeps_unknown_rule_types_verbatim_and_tolerates_missing_require() -> None:
    document = fixture("group.json")
    group_id = document["result"]["id"]
    responses.get(f"{GROUPS_URL}/{group_id}", json=document)

    group = make_client().get_group(group_id)

    assert group.include == document["result"]["include"]
    assert group.include[2] == {
        "auth_context": {"id": "ctx-1", "ac_id": "c1", "identity_provider_id": "idp-1"}
    }
    assert group.exclude == [{"email": {"email": "mallory@example.com"}}]
    assert group.require == []


@responses.activate
def test_is_default_read_as_a_boolean_is_sent_back_by_a_replace() -> None:
    document = fixture("group.json")
    group_id = document["result"]["id"]
    default = {**document, "result": {**document["result"], "is_default": True}}
    responses.get(f"{GROUPS_URL}/{group_id}", json=default)
    responses.put(f"{GROUPS_URL}/{group_id}", json=default)
    client = make_client()

    group = client.get_group(group_id)
    client.replace_group(group)

    assert group.is_default is True
    sent = json.loads(responses.calls[1].request.body or b"")
    assert sent["is_default"] is True
    assert set(sent) == {"name", "include", "exclude", "require", "is_default"}


def test_is_default_of_the_wrong_type_is_not_kept() -> None:
    listed = fixture("groups_page_1.json")["result"][0]
    assert listed["is_default"] == []  # the spec's response type for it is wrong
    assert group_from_json(listed).is_default is None  # type: ignore[union-attr]
    assert group_from_json({**listed, "is_default": False}).is_default is False  # type: ignore[union-attr]


@responses.activate
def test_get_group_404_keeps_status_code_and_message() -> None:
    responses.get(f"{GROUPS_URL}/nope", json=fixture("error_not_found.json"), status=404)

    with pytest.raises(CloudflareError) as caught:
        make_client().get_group("nope")

    assert (caught.value.status, caught.value.code) == (404, 12130)
    assert caught.value.message == "access.api.error.not_found"
    assert str(caught.value) == (
        "Cloudflare API 404 (code 12130): access.api.error.not_found on GET /access/groups/nope"
    )


@responses.activate
def test_replace_group_sends_the_whole_group_and_no_is_default_it_did_not_read() -> None:
    rules: list[Rule] = [
        {"email": {"email": "a@x.com"}},
        {"new_rule_type_2030": {"anything": [1, 2]}},
    ]
    group = Group(id="g1", name="app", include=rules, exclude=[{"everyone": {}}], require=[])
    responses.put(
        f"{GROUPS_URL}/g1",
        json={
            "success": True,
            "errors": [],
            "messages": [],
            "result": {
                "id": "g1",
                "name": "app",
                "include": rules,
                "exclude": [{"everyone": {}}],
                "require": [],
            },
        },
    )

    replaced = make_client().replace_group(group)

    sent = json.loads(responses.calls[0].request.body or b"")
    assert sent == {"name": "app", "include": rules, "exclude": [{"everyone": {}}], "require": []}
    assert "is_default" not in sent
    assert replaced == group


@responses.activate
def test_create_group_posts_and_reads_the_201_back() -> None:
    rules: list[Rule] = [{"email": {"email": "a@x.com"}}, {"unknown_future": {}}]
    result = {"id": "new-1", "name": "aud", "include": rules, "exclude": [], "require": []}
    responses.post(
        GROUPS_URL,
        status=201,
        json={"success": True, "errors": [], "messages": [], "result": result},
    )

    created = make_client().create_group("aud", rules)

    assert created == Group(id="new-1", name="aud", include=rules)
    sent = json.loads(responses.calls[0].request.body or b"")
    assert sent == {"name": "aud", "include": rules, "exclude": [], "require": []}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_auth_failure_keeps_status_and_code_10000(status: int) -> None:
    responses.get(GROUPS_URL, json=fixture("error_auth.json"), status=status)

    with pytest.raises(CloudflareError) as caught:
        make_client().list_groups()

    assert (caught.value.status, caught.value.code) == (status, 10000)
    assert str(caught.value).startswith(
        f"Cloudflare API {status} (code 10000): Authentication error"
    )


@responses.activate
def test_success_false_on_a_200_is_an_error() -> None:
    body = {"success": False, "errors": [{"code": 7003, "message": "No route"}], "result": None}
    responses.get(f"{GROUPS_URL}/g1", json=body)

    with pytest.raises(CloudflareError) as caught:
        make_client().get_group("g1")
    assert (caught.value.status, caught.value.code, caught.value.message) == (200, 7003, "No route")


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (502, (FIXTURES / "bad_gateway.html").read_text(), "text/html"),
        (200, (FIXTURES / "groups_page_1.json").read_text()[:300], "application/json"),
        (200, "", "application/json"),
        (200, b"\xff\xfe not utf-8", "application/json"),
        (200, "[1, 2]", "application/json"),
    ],
)
@responses.activate
def test_a_body_that_is_not_an_envelope_is_a_cloudflare_error(
    status: int, body: str | bytes, content_type: str
) -> None:
    responses.post(GROUPS_URL, body=body, status=status, content_type=content_type)

    with pytest.raises(CloudflareError) as caught:
        make_client().create_group("x", [])

    assert type(caught.value) is CloudflareError
    assert caught.value.status == status
    assert caught.value.__cause__ is None  # no JSONDecodeError chained into logs


@responses.activate
def test_truncated_json_says_invalid_json() -> None:
    body = (FIXTURES / "groups_page_1.json").read_text()
    responses.get(GROUPS_URL, body=body[: len(body) // 2], content_type="application/json")

    with pytest.raises(CloudflareError, match="invalid JSON in response") as caught:
        make_client().list_groups()
    assert caught.value.status == 200


@pytest.mark.parametrize("timeout", [requests.ConnectTimeout(), requests.ReadTimeout()])
@responses.activate
def test_timeout_is_an_error_without_status(timeout: Exception) -> None:
    responses.get(GROUPS_URL, body=timeout)
    client = make_client(timeout=7.5)

    with pytest.raises(CloudflareError) as caught:
        client.list_groups()

    assert caught.value.status is None
    assert str(caught.value) == (
        "Cloudflare API timeout after 7.5s on GET /access/groups?page=1&per_page=1000"
    )
    assert client.stats.snapshot().requests == {("GET", "error"): 1}


@responses.activate
def test_connection_error_is_an_error_without_status() -> None:
    responses.get(GROUPS_URL, body=requests.ConnectionError("refused"))

    with pytest.raises(CloudflareError, match="connection error") as caught:
        make_client().list_groups()
    assert caught.value.status is None


# -- retries ---------------------------------------------------------------------------------


@responses.activate
def test_get_is_retried_on_503_then_succeeds() -> None:
    responses.get(GROUPS_URL, body="<html>503</html>", status=503, content_type="text/html")
    add_page(1, page(1, ["a"], per_page=2))

    assert [g.id for g in make_client(per_page=2).list_groups()] == ["a"]
    assert len(responses.calls) == 2


@responses.activate
def test_get_gives_up_after_two_retries_with_the_last_status() -> None:
    for _ in range(4):
        responses.get(
            f"{GROUPS_URL}/g", body="<html>502</html>", status=502, content_type="text/html"
        )

    with pytest.raises(CloudflareError) as caught:
        make_client().get_group("g")
    assert caught.value.status == 502
    assert len(responses.calls) == 3


@responses.activate
def test_put_is_retried_on_504() -> None:
    group = Group(id="g1", name="app", include=[])
    responses.put(f"{GROUPS_URL}/g1", body="gateway timeout", status=504)
    result = {"id": "g1", "name": "app", "include": []}
    responses.put(f"{GROUPS_URL}/g1", json={"success": True, "errors": [], "result": result})

    assert make_client().replace_group(group) == group
    assert len(responses.calls) == 2


@responses.activate
def test_post_is_never_retried() -> None:
    responses.post(GROUPS_URL, body="<html>503</html>", status=503, content_type="text/html")
    responses.post(GROUPS_URL, status=201, json={"success": True, "result": {}})

    with pytest.raises(CloudflareError) as caught:
        make_client().create_group("x", [])
    assert caught.value.status == 503
    assert len(responses.calls) == 1


def test_retry_policy_retries_a_failed_connect_for_get_but_not_for_post() -> None:
    # urllib3 would retry a refused connect whatever the method; a create must go out once.
    refused = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    policy = retry_policy()

    assert policy.increment("GET", "/x", error=refused).total == 1
    with pytest.raises(MaxRetryError):
        policy.increment("POST", "/x", error=refused)
    assert 429 not in (policy.status_forcelist or ())
    assert policy.respect_retry_after_header is False


# -- rate limiting ---------------------------------------------------------------------------


def add_429(retry_after: str | None = "10") -> None:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    responses.get(GROUPS_URL, json=fixture("error_rate_limited.json"), status=429, headers=headers)


@responses.activate
def test_a_long_pause_refuses_every_call_at_once_and_says_when_calls_resume() -> None:
    clock = FakeClock()
    client = make_client(clock)  # timeout 30 s: a pause ending later is not waited for
    add_429("120")

    with pytest.raises(RateLimited) as first:
        client.list_groups()
    assert (first.value.status, first.value.code) == (429, 971)
    assert first.value.retry_at == clock.now + 120
    assert first.value.retry_after_seconds == 120

    clock.now += 9
    for call in (
        client.list_groups,
        lambda: client.get_group("g"),
        lambda: client.create_group("x", []),
    ):
        with pytest.raises(RateLimited) as refused:
            call()
        assert refused.value.retry_at == first.value.retry_at
        assert refused.value.retry_after_seconds == pytest.approx(111)
        assert refused.value.message == (
            "rate limited: calls paused for another 111s, until 2023-11-14T22:15:20Z"
        )
    assert clock.slept == []
    assert len(responses.calls) == 1
    assert client.stats.snapshot().rate_limited_total == 1
    assert client.stats.snapshot().paused_until == first.value.retry_at
    assert client.stats.snapshot().paused_until_wall == WALL + 120
    assert client.pause_left() == pytest.approx(111)

    clock.now += 111
    assert client.pause_left() is None
    responses.replace(responses.GET, GROUPS_URL, json=page(1, []))
    assert client.list_groups() == []
    assert len(responses.calls) == 2
    assert client.stats.snapshot().paused_until is None


@responses.activate
def test_a_call_meeting_a_short_pause_waits_it_out_then_goes_out() -> None:
    clock = FakeClock()
    client = make_client(clock)
    add_429("10")
    with pytest.raises(RateLimited):
        client.list_groups()
    clock.now += 3
    responses.replace(responses.GET, GROUPS_URL, json=page(1, []))

    assert client.list_groups() == []  # the 7 s left are slept, then the call goes out

    assert clock.slept == [7]
    assert len(responses.calls) == 2
    assert client.stats.snapshot().paused_until is None


@responses.activate
def test_the_wait_is_bounded_by_the_timeout() -> None:
    clock = FakeClock()
    client = make_client(clock, timeout=5)
    add_429("10")
    with pytest.raises(RateLimited):
        client.list_groups()

    with pytest.raises(RateLimited) as refused:  # 10 s left > 5 s timeout: not waited for
        client.get_group("g")
    assert clock.slept == [] and "another 10s" in refused.value.message

    clock.now += 5  # 5 s left: waited for
    responses.get(f"{GROUPS_URL}/g", json=fixture("error_not_found.json"), status=404)
    with pytest.raises(CloudflareError) as answered:
        client.get_group("g")
    assert answered.value.status == 404
    assert clock.slept == [5]


@responses.activate
def test_waiting_calls_that_meet_429_again_keep_the_exponential_backoff() -> None:
    clock = FakeClock()
    client = make_client(clock)  # waits up to 30 s
    add_429("10")
    pauses = []
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            client.list_groups()  # waits out the previous pause, then meets a new 429
        pauses.append(caught.value.retry_after_seconds)
    assert pauses == [10, 20, 40]
    assert clock.slept == [10, 20]

    with pytest.raises(RateLimited) as refused:  # 40 s > 30 s: refused without a request
        client.list_groups()
    assert refused.value.status is None
    assert len(responses.calls) == 3
    assert client.stats.snapshot().rate_limited_total == 3


@responses.activate
def test_repeated_429s_double_the_pause_up_to_the_cap_and_a_success_resets_it() -> None:
    clock = FakeClock()
    client = make_client(clock, max_pause_seconds=35)
    add_429("10")
    pauses = []
    for _ in range(4):
        with pytest.raises(RateLimited) as caught:
            client.list_groups()
        pauses.append(caught.value.retry_after_seconds)
        clock.now = caught.value.retry_at
    assert pauses == [10, 20, 35, 35]

    responses.replace(responses.GET, GROUPS_URL, json=page(1, []))
    client.list_groups()
    responses.replace(
        responses.GET,
        GROUPS_URL,
        json=fixture("error_rate_limited.json"),
        status=429,
        headers={"retry-after": "10"},
    )
    with pytest.raises(RateLimited) as after_success:
        client.list_groups()
    assert after_success.value.retry_after_seconds == 10
    assert client.stats.snapshot().rate_limited_total == 5


@pytest.mark.parametrize("retry_after", [None, "soon", "-5", "nan"])
@responses.activate
def test_missing_or_garbage_retry_after_pauses_300_seconds(retry_after: str | None) -> None:
    add_429(retry_after)

    with pytest.raises(RateLimited) as caught:
        make_client().list_groups()
    assert caught.value.retry_after_seconds == 300


@responses.activate
def test_retry_after_as_an_http_date() -> None:
    add_429("Tue, 14 Nov 2023 22:14:20 GMT")  # wall clock is 2023-11-14 22:13:20 UTC

    with pytest.raises(RateLimited) as caught:
        make_client().list_groups()
    assert caught.value.retry_after_seconds == 60


def test_a_429_of_a_sibling_request_in_flight_does_not_lengthen_the_pause() -> None:
    clock = FakeClock()
    gate = RateLimitGate(ClientStats(), clock=clock, max_pause_seconds=900)

    assert gate.on_429("10") == (1010, 10)
    clock.now += 2
    assert gate.on_429("10") == (1010, 8)  # same block: neither doubled nor extended
    clock.now = 1010
    assert gate.paused_until() is None
    assert gate.on_429("10") == (1030, 20)  # the next block is a repeat: doubled


def test_the_gate_waits_a_short_pause_out_and_never_longer_than_asked() -> None:
    clock = FakeClock()
    gate = RateLimitGate(ClientStats(), clock=clock, sleep=clock.sleep)
    assert gate.wait_turn(30) is None and clock.slept == []  # no pause: no wait

    gate.on_429("10")
    assert gate.wait_turn(30) is None  # ends within 30 s: slept through
    assert clock.slept == [10] and gate.paused_until() is None

    gate.on_429("10")  # a repeat: 20 s
    assert gate.wait_turn(19) == 1030  # ends later than 19 s from now: not waited for
    assert clock.slept == [10]


def test_a_new_pause_starting_while_the_gate_waits_does_not_stretch_the_wait() -> None:
    clock = FakeClock()

    def sleep_then_sibling_429(seconds: float) -> None:
        clock.sleep(seconds)
        gate.on_429("10")  # another thread's call went out at the end of the pause: 429 again

    gate = RateLimitGate(ClientStats(), clock=clock, sleep=sleep_then_sibling_429)
    gate.on_429("10")
    assert gate.wait_turn(15) == 1030  # the new 20 s pause ends past the 15 s budget
    assert clock.slept == [10]


@responses.activate
def test_ratelimit_header_and_requests_are_counted() -> None:
    headers = {"Ratelimit": '"default";r=1187;t=240', "Ratelimit-Policy": '"default";q=1200;w=300'}
    add_page(1, page(1, ["a", "b"], per_page=2), headers=headers)
    add_page(2, page(2, [], per_page=2))
    responses.get(f"{GROUPS_URL}/x", json=fixture("error_not_found.json"), status=404)
    client = make_client(per_page=2)

    client.list_groups()
    with pytest.raises(CloudflareError):
        client.get_group("x")

    stats = client.stats.snapshot()
    assert stats.rate_limit_remaining == 1187
    assert stats.rate_limit_reset_seconds == 240
    assert stats.requests == {("GET", "2xx"): 2, ("GET", "4xx"): 1}


# -- the token never leaks -------------------------------------------------------------------


def leak_429() -> None:
    add_429("10")


def leak_echo() -> None:  # a server echoing the header it refused
    body = {"success": False, "errors": [{"code": 10000, "message": f"bad token {TOKEN}"}]}
    responses.get(GROUPS_URL, json=body, status=403)


@pytest.mark.parametrize(
    "arrange",
    [
        lambda: responses.get(GROUPS_URL, json=fixture("error_auth.json"), status=403),
        leak_echo,
        lambda: responses.get(GROUPS_URL, body="<html>oops</html>", status=500),
        lambda: responses.get(GROUPS_URL, body='{"success": tr', status=200),
        lambda: responses.get(GROUPS_URL, body=requests.ReadTimeout(f"read {TOKEN}")),
        lambda: responses.get(GROUPS_URL, body=requests.ConnectionError("refused")),
        lambda: add_page(1, page(1, ["a", "a"], per_page=5)),
        lambda: add_page(1, page(1, ["a"], per_page=5, total_count=9)),
        leak_429,
    ],
)
@responses.activate
def test_the_token_never_appears_in_errors_repr_or_logs(
    arrange: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    arrange()
    client = make_client()
    errors = []
    for _ in range(2):  # the second call meets the pause after a 429
        with pytest.raises(CloudflareError) as caught:
            client.list_groups()
        errors.append(caught.value)

    assert caplog.records, "each request is logged at DEBUG"
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in error.message
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text
