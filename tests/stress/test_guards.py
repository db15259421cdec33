"""Guards everywhere: every sync a guard must stop is stopped, whoever asks, and audited.

Three audiences each trip one guard (docs/design.md, "Sync and its guards") — ``empty_source`` (Vault lists nobody, the
group has members), ``mass_removal`` (8 of 18 members would go), ``rule_limit`` (1,001
members for a 1,000-rule group) — next to a healthy drifting audience that syncs normally.
They are synced by auto-sync ``full`` (the real ``serve``'s start-up cycle), the API, the
operator page (session cookie + CSRF header, as the page's script does) and the CLI, with
and without ``--force``. Proven: 100% of them answer ``blocked`` with the guard's code, each
attempt leaves a ``blocked`` audit row naming its trigger, no PUT ever reaches those groups,
and only the healthy audience is written; ``rule_limit`` holds even with force.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support.stress_world import (
    ACCOUNT,
    ADMIN,
    CF_TOKEN,
    AudienceSpec,
    RecordingSimulator,
    Served,
    World,
    email_rule,
    seed_settings,
    write_world,
)

from exporter.cli.main import main as cli

GUARDED = {
    "empty-source": "empty_source",
    "mass-removal": "mass_removal",
    "rule-limit": "rule_limit",
}


@pytest.fixture
def sim() -> Any:
    simulator = RecordingSimulator(account_id=ACCOUNT, token=CF_TOKEN).start()
    try:
        yield simulator
    finally:
        simulator.stop()


def guard_world(path: Path, sim: RecordingSimulator) -> World:
    ten = [f"m{i}@example.com" for i in range(10)]
    many = [f"user{i:04d}@example.com" for i in range(1001)]
    specs = [
        AudienceSpec("empty-source", [], [email_rule(f"e{i}@example.com") for i in range(3)]),
        AudienceSpec(
            "mass-removal",
            ten,
            [email_rule(e) for e in ten] + [email_rule(f"x{i}@example.com") for i in range(8)],
        ),
        AudienceSpec("rule-limit", many, [email_rule(e) for e in many[:990]]),
        AudienceSpec("healthy", ten[:3], [email_rule(e) for e in ten[:2]]),
    ]
    return write_world(path, sim, specs)


def audit(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM sys_infra_drift_audit ORDER BY id")]


def blocked_rows(path: Path, trigger: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in GUARDED}
    for row in audit(path):
        if row["trigger"] == trigger and row["audience"] in GUARDED:
            found[row["audience"]].append(row)
    return found


def assert_blocked_results(results: list[dict[str, Any]], *names: str) -> None:
    """Every guarded audience named (all of them by default) answered ``blocked``."""
    by_name = {r["audience"]: r for r in results}
    for name in names or tuple(GUARDED):
        assert by_name[name]["result"] == "blocked", by_name[name]
        assert by_name[name]["blocked_reason"] == GUARDED[name]
        assert by_name[name]["reason"]


def test_every_blocked_sync_is_blocked_and_audited(
    sim: RecordingSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    world = guard_world(tmp_path / "vault.db", sim)
    initial = {g["id"]: g["include"] for g in sim.groups()}
    healthy = world.audiences["healthy"].group_id
    seed_settings(world.path, check_interval_seconds=30, auto_sync="full")

    served = Served(world.path, sim.base_url, tmp_path / "serve.log").wait_ready()
    try:
        # auto-sync: the start-up cycle syncs every drifting audience it may
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(blocked_rows(world.path, "auto").values()):
            time.sleep(0.2)
        auto = blocked_rows(world.path, "auto")
        for name in GUARDED:
            assert auto[name] and all(r["result"] == "blocked" for r in auto[name]), name
            assert all(r["reason"] and r["actor"] == "auto-sync" for r in auto[name])
        assert [r["result"] for r in audit(world.path) if r["audience"] == "healthy"] == ["synced"]
        sim.set_include(healthy, initial[healthy])  # drift again, for the next callers

        # the API, one audience at a time, then everything, then with force
        for name in GUARDED:
            answer = served.call("POST", "/iam/drift/sync", {"audience": name})
            assert answer.status_code == 200
            assert_blocked_results(answer.json()["results"], name)
        everything = served.call("POST", "/iam/drift/sync", {"all": True}).json()["results"]
        assert_blocked_results(everything)
        assert {r["audience"]: r["result"] for r in everything}["healthy"] == "synced"
        forced = served.call("POST", "/iam/drift/sync", {"audience": "rule-limit", "force": True})
        assert forced.json()["results"][0]["blocked_reason"] == "rule_limit"
        api = blocked_rows(world.path, "api")
        assert {n: len(rows) for n, rows in api.items()} == {
            "empty-source": 2,
            "mass-removal": 2,
            "rule-limit": 3,
        }

        # the page: session cookie + CSRF header, as page.js sends it
        session = requests.Session()
        form = session.get(f"{served.url}/login", timeout=10).text
        login_csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert login_csrf is not None
        session.post(
            f"{served.url}/login",
            data={"token": ADMIN, "csrf": login_csrf.group(1)},
            timeout=10,
        )
        page_csrf = re.search(
            r'<meta name="csrf-token" content="([^"]+)">', session.get(served.url, timeout=10).text
        )
        assert page_csrf is not None
        headers = {"X-CSRF-Token": page_csrf.group(1), "X-Vault-Drift-Page": "1"}
        for name in GUARDED:
            answer = session.post(
                f"{served.url}/iam/drift/sync", json={"audience": name}, headers=headers, timeout=60
            )
            assert answer.status_code == 200, answer.text
            assert_blocked_results(answer.json()["results"], name)
        page = blocked_rows(world.path, "page")
        assert all(len(rows) == 1 for rows in page.values()), page
        metrics = served.session.get(f"{served.url}/metrics", timeout=10).text
        for code in GUARDED.values():
            line = f'vault_drift_syncs_blocked_total{{reason="{code}"}}'
            assert any(
                m.startswith(line) and float(m.split()[-1]) >= 3 for m in metrics.splitlines()
            )
        assert served.stop() == 0
    finally:
        served.kill()

    # the CLI, on the same database once serve has stopped
    monkeypatch.setenv("VAULT_DRIFT_DATABASE", str(world.path))
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", sim.base_url)
    for name in GUARDED:
        assert cli(["sync", "--audience", name, "--json"]) == 1
        assert_blocked_results(json.loads(capsys.readouterr().out)["results"], name)
    assert cli(["sync", "--audience", "rule-limit", "--force", "--json"]) == 1
    assert cli(["sync", "--all", "--json"]) == 1
    capsys.readouterr()
    cli_rows = blocked_rows(world.path, "cli")
    assert {n: len(rows) for n, rows in cli_rows.items()} == {
        "empty-source": 2,
        "mass-removal": 2,
        "rule-limit": 3,
    }

    # 100%: every attempt on a guarded audience was blocked, none touched its group
    attempts = [r for r in audit(world.path) if r["audience"] in GUARDED]
    assert attempts and {r["result"] for r in attempts} == {"blocked"}
    assert all(r["reason"] and r["finished_at"] for r in attempts)
    for name in GUARDED:
        group_id = world.audiences[name].group_id
        assert sim.group(group_id)["include"] == initial[group_id]
        assert not [r for r in sim.requests if r.method == "PUT" and r.path.endswith(group_id)]
