"""D1's REST API as the simulator answers it, checked against workerd's own D1: what D1
refuses, with its codes, so that the exporter cannot come to depend on plain SQLite."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from d1_world import DATABASE_ID, World


def post(
    world: World, body: dict[str, Any], *, token: str = "demo-token", database: str = DATABASE_ID
) -> requests.Response:
    url = f"{world.base_url}/accounts/demo-account/d1/database/{database}/raw"
    return requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def sql(world: World, text: str, params: list[Any] | None = None) -> requests.Response:
    return post(world, {"sql": text, "params": params or []})


@pytest.mark.parametrize(
    "statement",
    [
        "BEGIN",
        "SAVEPOINT s1",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA user_version",
        "PRAGMA journal_mode",
        "PRAGMA schema_version",
        "PRAGMA integrity_check",
        "CREATE TEMP TABLE scratch (x)",
        "SELECT sqlite_version()",
        "CREATE TABLE _cf_mine (x)",
    ],
)
def test_what_d1_refuses_is_refused_with_its_code(d1_backend: World, statement: str) -> None:
    answer = sql(d1_backend, statement)
    assert answer.status_code == 400
    document = answer.json()
    assert document["success"] is False and document["errors"][0]["code"] == 7500


def test_what_d1_allows(d1_backend: World) -> None:
    for statement in (
        "PRAGMA table_info(sys_infra_state)",
        "PRAGMA quick_check",
        "SELECT name FROM sqlite_master WHERE type = 'table'",
    ):
        answer = sql(d1_backend, statement)
        assert answer.status_code == 200, (statement, answer.text)
        result = answer.json()["result"][0]
        assert result["success"] and result["results"]["columns"], statement


def test_numbers_are_bound_as_real_and_text_as_text(d1_backend: World) -> None:
    batch = [
        {"sql": "CREATE TABLE t (label TEXT, n INTEGER)", "params": []},
        {"sql": "INSERT INTO t VALUES (?, ?)", "params": [5, 7]},
        {"sql": "INSERT INTO t VALUES (?, ?)", "params": ["5", 7.0]},
        {"sql": "SELECT label, typeof(label), n, typeof(n) FROM t", "params": []},
    ]
    answer = post(d1_backend, {"batch": batch}).json()
    assert answer["result"][3]["results"]["rows"] == [
        ["5.0", "text", 7, "integer"],
        ["5", "text", 7, "integer"],
    ]


def test_limits_parameters_and_statement_size(d1_backend: World) -> None:
    many = ", ".join("?" * 101)
    assert sql(d1_backend, f"SELECT {many}", list(range(101))).status_code == 400
    assert sql(d1_backend, f"SELECT {', '.join('?' * 99)}", list(range(99))).status_code == 200
    long = "SELECT 1" + " " * 100_001
    assert sql(d1_backend, long).status_code == 400


def test_a_batch_is_atomic_and_a_multi_statement_sql_answers_its_last(d1_backend: World) -> None:
    batch = [
        {"sql": "CREATE TABLE IF NOT EXISTS u (x TEXT)", "params": []},
        {"sql": "INSERT INTO u VALUES (?)", "params": ["kept?"]},
        {"sql": "INSERT INTO no_such_table VALUES (1)", "params": []},
    ]
    failed = post(d1_backend, {"batch": batch})
    assert failed.status_code == 400 and failed.json()["errors"][0]["code"] == 7500
    tables = sql(d1_backend, "SELECT name FROM sqlite_master WHERE name = 'u'").json()
    assert tables["result"][0]["results"]["rows"] == []  # nothing of the batch
    several = sql(
        d1_backend,
        "CREATE TABLE v (x TEXT); INSERT INTO v VALUES ('a'); SELECT x, ? FROM v",
        ["last"],
    )
    assert several.status_code == 200
    [result] = several.json()["result"]
    assert result["results"]["rows"] == [["a", "last"]]


def test_an_unknown_database_and_a_bad_token(d1_backend: World) -> None:
    unknown = post(d1_backend, {"sql": "SELECT 1"}, database="11111111-2222-4333-8444-555555555555")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 7404
    refused = post(d1_backend, {"sql": "SELECT 1"}, token="wrong")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == 10000
