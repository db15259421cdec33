"""Cloudflare's official Python SDK (``cloudflare``, a test extra) against the simulators.

The SDK is generated from Cloudflare's OpenAPI schema, so its models are the schema's word on
the shapes: the client runs with strict response validation, and an answer the schema does
not allow fails the test. One field is left out, on purpose: the schema types an Access
group's ``is_default`` as a list of rules, while Cloudflare answers it as a boolean (as the
simulator does, see ``exporter/demo/simulator.py``), so ``without_is_default`` removes it
from the group answers before the SDK validates them. Everything else is validated as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare.types.d1 import QueryResult

from exporter.demo.d1_simulator import D1Simulator
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator

ACCOUNT = "acct-sdk"
TOKEN = "sim-token-sdk"
DATABASE_ID = "0b5c2f04-1d2e-4f3a-9b8c-7d6e5f4a3b2c"


class WithoutIsDefault(httpx.BaseTransport):
    """Drops ``is_default`` from the Access group answers (see the module docstring)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if "/access/groups" not in request.url.path:
            return response
        document = json.loads(response.read())
        result = document.get("result")
        for group in result if isinstance(result, list) else [result]:
            if isinstance(group, dict):
                group.pop("is_default", None)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, json=document)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[CloudflareSimulator, D1Simulator]]:
    with CloudflareSimulator(account_id=ACCOUNT, token=TOKEN) as sim:
        database = tmp_path / "vault.db"
        build_sample(database, sim, sim.audit.clock())
        d1 = D1Simulator(database, database_id=DATABASE_ID, name="tpb-vault")
        sim.attach_d1(d1)
        try:
            yield sim, d1
        finally:
            d1.close()


@pytest.fixture
def sdk(world: tuple[CloudflareSimulator, D1Simulator]) -> Iterator[cloudflare.Cloudflare]:
    sim, _ = world
    client = cloudflare.Cloudflare(
        api_token=TOKEN,
        base_url=sim.base_url,
        max_retries=0,
        timeout=10,
        http_client=httpx.Client(transport=WithoutIsDefault()),
        _strict_response_validation=True,
    )
    with client:
        yield client


def email(address: str) -> dict[str, Any]:
    return {"email": {"email": address}}


def test_access_groups_through_the_sdk(sdk: cloudflare.Cloudflare) -> None:
    groups = sdk.zero_trust.access.groups
    listed = list(groups.list(account_id=ACCOUNT))
    assert listed and all(group.id and group.name for group in listed)
    created = groups.create(account_id=ACCOUNT, name="sdk-made", include=[email("a@x.example")])
    assert created is not None and created.id
    fetched = groups.get(created.id, account_id=ACCOUNT)
    assert fetched is not None and fetched.name == "sdk-made"
    updated = groups.update(
        created.id, account_id=ACCOUNT, name="sdk-made", include=[email("b@x.example")]
    )
    assert updated is not None and updated.include is not None
    assert updated.include[0].to_dict() == email("b@x.example")
    deleted = groups.delete(created.id, account_id=ACCOUNT)
    assert deleted is not None and deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        groups.get(created.id, account_id=ACCOUNT)


def test_the_audit_log_through_the_sdk(sdk: cloudflare.Cloudflare) -> None:
    groups = sdk.zero_trust.access.groups
    made = groups.create(account_id=ACCOUNT, name="audited", include=[email("c@x.example")])
    assert made is not None
    entries = list(sdk.audit_logs.list(account_id=ACCOUNT, direction="asc", per_page=5))
    mine = [e for e in entries if e.resource is not None and e.resource.id == made.id]
    assert len(mine) == 1
    entry = mine[0]
    assert entry.action is not None and entry.action.type == "create"
    assert entry.actor is not None and entry.actor.email and entry.when is not None


def test_d1_databases_are_listed_and_described(sdk: cloudflare.Cloudflare) -> None:
    databases = list(sdk.d1.database.list(account_id=ACCOUNT))
    assert [(db.uuid, db.name, db.version) for db in databases] == [
        (DATABASE_ID, "tpb-vault", "production")
    ]
    assert databases[0].created_at is not None
    assert list(sdk.d1.database.list(account_id=ACCOUNT, name="other")) == []
    one = sdk.d1.database.get(DATABASE_ID, account_id=ACCOUNT)
    assert one.uuid == DATABASE_ID and one.name == "tpb-vault"
    assert one.file_size and one.file_size > 0 and one.num_tables and one.num_tables >= 5
    assert one.read_replication is not None and one.read_replication.mode == "disabled"
    some = sdk.d1.database.get(DATABASE_ID, account_id=ACCOUNT, fields=["uuid", "name"])
    assert some.to_dict() == {"uuid": DATABASE_ID, "name": "tpb-vault"}
    with pytest.raises(cloudflare.NotFoundError):
        sdk.d1.database.get("11111111-2222-4333-8444-555555555555", account_id=ACCOUNT)


def test_d1_queries_answer_one_result_per_statement(sdk: cloudflare.Cloudflare) -> None:
    answer = sdk.d1.database.query(
        DATABASE_ID, account_id=ACCOUNT, sql="SELECT 1 AS a; SELECT ? AS b", params=["two"]
    )
    results = list(answer)
    assert [r.results for r in results] == [[{"a": 1}], [{"b": "two"}]]
    raw = list(
        sdk.d1.database.raw(
            DATABASE_ID,
            account_id=ACCOUNT,
            batch=[{"sql": "SELECT count(*) AS n FROM iam_user"}, {"sql": "SELECT 2 AS b"}],
        )
    )
    assert [r.results.columns if r.results else None for r in raw] == [["n"], ["b"]]


def test_d1_meta_carries_every_field_the_sdk_declares(sdk: cloudflare.Cloudflare) -> None:
    [result] = sdk.d1.database.query(
        DATABASE_ID, account_id=ACCOUNT, sql="UPDATE iam_user SET status = status"
    )
    assert result.meta is not None
    declared = set(QueryResult.model_fields["meta"].annotation.__args__[0].model_fields)  # type: ignore[union-attr]
    missing = {name for name in declared if getattr(result.meta, name) is None}
    assert missing == set()
    assert result.meta.changes and result.meta.changes > 0 and result.meta.changed_db is True
    assert result.meta.size_after and result.meta.size_after > 0


def test_d1_errors_as_the_sdk_sees_them(sdk: cloudflare.Cloudflare) -> None:
    with pytest.raises(cloudflare.PermissionDeniedError) as denied:
        sdk.d1.database.query(DATABASE_ID, account_id="someone-else", sql="SELECT 1")
    assert denied.value.status_code == 403 and "7403" in str(denied.value)
    with pytest.raises(cloudflare.BadRequestError) as refused:
        sdk.d1.database.query(DATABASE_ID, account_id=ACCOUNT, sql="BEGIN")
    assert "state.storage.transaction()" in str(refused.value)
