"""API fuzzing: schemathesis drives the real ``vault-drift serve`` from its own ``/openapi.json``.

Every operation gets generated requests (valid and invalid bodies, odd path and query values)
with the admin token, with the read token and with none. Proven: no answer is a 5xx, every
status code is one the document declares, and every body matches the declared schema and
content type. ``max_examples`` bounds the run (≈ 30 s by default).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support.stress_world import ACCOUNT, ADMIN, CF_TOKEN, LONG, READ, Served, mixed_world

from exporter.demo.simulator import CloudflareSimulator

# `make test-long` (-m slow, VAULT_DRIFT_LONG=1) runs them long, past the default 300 s timeout
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400 if LONG else 300)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 300 if LONG else 40


@pytest.fixture(scope="module")
def served_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with CloudflareSimulator(account_id=ACCOUNT, token=CF_TOKEN, per_page_cap=10) as sim:
        world = mixed_world(tmp / "vault.db", sim, count=6)
        served = Served(world.path, sim.base_url, tmp / "serve.log").wait_ready()
        try:
            yield served
            assert served.healthy()
            assert served.stop() == 0
        finally:
            served.kill()
        assert "Traceback" not in Path(tmp / "serve.log").read_text()


@pytest.fixture(scope="module")
def served_broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``serve`` on a Vault whose membership table was renamed after it started."""
    tmp = tmp_path_factory.mktemp("fuzz-broken")
    with CloudflareSimulator(account_id=ACCOUNT, token=CF_TOKEN, per_page_cap=10) as sim:
        world = mixed_world(tmp / "vault.db", sim, count=6)
        served = Served(world.path, sim.base_url, tmp / "serve.log").wait_ready()
        try:
            with sqlite3.connect(world.path) as conn:
                conn.execute("ALTER TABLE iam_user_group RENAME TO iam_user_group_moved")
            conn.close()
            yield served
            assert served.healthy()
            assert served.stop() == 0
        finally:
            served.kill()
        assert "Traceback" not in Path(tmp / "serve.log").read_text()


@pytest.fixture(scope="module")
def api_schema(served_api: Served) -> Any:
    return schemathesis.openapi.from_url(f"{served_api.url}/openapi.json")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def unrouted(response: Any) -> bool:
    """A generated path no route matches (an empty path parameter): 404 before any handler."""
    return response.status_code == 404 and response.json() == {"error": "Not Found", "detail": None}


TOKENS = {"admin": ADMIN, "read": READ, "none": None}


def fuzz_operation(
    operation: Any, served: Served, token: str | None, checks: list[Any] = CHECKS
) -> list[tuple[str, int]]:
    """Generated cases for one operation; every answer checked; (method path, status) seen."""
    seen: list[tuple[str, int]] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @given(case=operation.as_strategy())
    @FUZZ
    def run(case: Any) -> None:
        response = case.call_and_validate(
            base_url=served.url, headers=headers, checks=checks, timeout=60
        )
        if response.status_code == 503 and case.path.startswith("/iam/"):
            assert response.json()["error"] == "vault unavailable", response.text
        seen.append((f"{case.method} {case.path}", response.status_code))
        if not case.path.startswith("/iam/") or unrouted(response):
            return
        if token is None:
            assert response.status_code == 401, response.text
        if token == READ and case.method != "GET":
            assert response.status_code == 403, response.text

    run()
    return seen


@pytest.mark.parametrize("who", TOKENS)
def test_every_operation_survives_fuzzing(api_schema: Any, served_api: Served, who: str) -> None:
    seen: list[tuple[str, int]] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        seen += fuzz_operation(operation, served_api, TOKENS[who])
    statuses = {status for _, status in seen}
    assert max(statuses) < 500
    if who == "admin":  # the fuzzing reached the handlers, not only the validation
        assert 200 in statuses and 422 in statuses, statuses


def test_a_broken_vault_answers_503_never_500(served_broken: Served) -> None:
    """The same fuzzing with the Vault unreadable: every answer that needs it is a declared
    503 "vault unavailable" (JSON, as the schema says), never a 500."""
    schema = schemathesis.openapi.from_url(f"{served_broken.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: list[tuple[str, int]] = []
    declared = [c for c in CHECKS if c is not not_a_server_error]
    for operation in operations:
        seen += fuzz_operation(operation, served_broken, ADMIN, declared)
    for path, body in [  # a real audience, which random names rarely are
        ("/iam/drift/check", {"audience": "aud-01"}),
        ("/iam/drift/sync", {"audience": "aud-01"}),
        ("/iam/drift/sync", {"all": True}),
    ]:
        answer = served_broken.call("POST", path, body)
        assert answer.status_code == 503, (path, body, answer.status_code, answer.text)
        assert answer.json()["error"] == "vault unavailable" and answer.json()["detail"]
        seen.append((f"POST {path}", answer.status_code))
    statuses = {status for _, status in seen}
    assert 503 in statuses and 500 not in statuses, statuses
    assert {s for s in statuses if s >= 500} == {503}
