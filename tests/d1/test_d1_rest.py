"""D1's REST API as the simulator answers it, checked against workerd's own D1: what D1
refuses, with its codes, so that the exporter cannot come to depend on plain SQLite."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from support.d1_world import DATABASE_ID, World


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


def test_a_batch_is_atomic(d1_backend: World) -> None:
    batch = [
        {"sql": "CREATE TABLE IF NOT EXISTS u (x TEXT)", "params": []},
        {"sql": "INSERT INTO u VALUES (?)", "params": ["kept?"]},
        {"sql": "INSERT INTO no_such_table VALUES (1)", "params": []},
    ]
    failed = post(d1_backend, {"batch": batch})
    assert failed.status_code == 400 and failed.json()["errors"][0]["code"] == 7500
    tables = sql(d1_backend, "SELECT name FROM sqlite_master WHERE name = 'u'").json()
    assert tables["result"][0]["results"]["rows"] == []  # nothing of the batch


def test_a_multi_statement_sql_answers_one_result_per_statement(d1_backend: World) -> None:
    """As D1's REST API (and Cloudflare's clients: the SDK, wrangler's "Executed N commands")
    does; workerd's own binding answers only the last, which the gateway does not show."""
    two = sql(d1_backend, "SELECT 1 AS a; SELECT 2 AS b")
    assert two.status_code == 200, two.text
    assert [r["results"] for r in two.json()["result"]] == [
        {"columns": ["a"], "rows": [[1]]},
        {"columns": ["b"], "rows": [[2]]},
    ]
    several = sql(
        d1_backend,
        "CREATE TABLE v (x TEXT); INSERT INTO v VALUES ('a'); SELECT x, ? FROM v",
        ["last"],
    )
    assert several.status_code == 200, several.text
    results = several.json()["result"]
    assert len(results) == 3 and all(r["success"] for r in results)
    assert results[1]["meta"]["changes"] == 1
    assert results[2]["results"]["rows"] == [["a", "last"]]


def test_parameters_bind_to_the_last_statement_only(d1_backend: World) -> None:
    misplaced = sql(d1_backend, "SELECT ? AS a; SELECT 2 AS b", ["first"])
    assert misplaced.status_code == 400
    error = misplaced.json()["errors"][0]
    assert (
        error["code"] == 7500 and "only the last statement can have parameters" in error["message"]
    )


def test_a_multi_statement_sql_is_applied_whole_or_not_at_all(d1_backend: World) -> None:
    sql(d1_backend, "CREATE TABLE w (x TEXT)")
    failed = sql(d1_backend, "INSERT INTO w VALUES ('b'); INSERT INTO no_such_table VALUES (1)")
    assert failed.status_code == 400 and failed.json()["errors"][0]["code"] == 7500
    rows = sql(d1_backend, "SELECT count(*) FROM w").json()["result"][0]["results"]["rows"]
    assert rows == [[0]]


@pytest.mark.parametrize("statement", ["BEGIN", "BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT s1"])
def test_a_transaction_gets_d1s_own_answer(d1_backend: World, statement: str) -> None:
    answer = sql(d1_backend, statement)
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == 7500
    assert "please use the state.storage.transaction()" in error["message"]


def test_another_account_and_a_wrong_method(d1_backend: World) -> None:
    url = f"{d1_backend.base_url}/accounts/someone-else/d1/database/{DATABASE_ID}/raw"
    headers = {"Authorization": "Bearer demo-token"}
    other = requests.post(url, json={"sql": "SELECT 1"}, headers=headers, timeout=30)
    assert other.status_code == 403 and other.json()["errors"][0]["code"] == 7403
    mine = f"{d1_backend.base_url}/accounts/demo-account/d1/database/{DATABASE_ID}"
    for method, route in (("GET", "/query"), ("PUT", "/raw"), ("DELETE", "/query")):
        wrong = requests.request(method, mine + route, headers=headers, timeout=30)
        assert wrong.status_code == 404, (method, route, wrong.text)
        assert wrong.json()["errors"][0]["code"] == 7000


def test_an_unknown_database_and_a_bad_token(d1_backend: World) -> None:
    unknown = post(d1_backend, {"sql": "SELECT 1"}, database="11111111-2222-4333-8444-555555555555")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 7404
    refused = post(d1_backend, {"sql": "SELECT 1"}, token="wrong")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == 10000
