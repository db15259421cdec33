"""Exposure in the real ``vault-drift serve``: the member-seconds counters and the revocation
histogram across restarts, and a leaver revoked by remove_only with no human involved."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import requests
from support import make_client, wait_for
from test_server import ADMIN, Served, series, world  # noqa: F401  (world: a fixture)

from exporter.demo.simulator import CloudflareSimulator

LMS = 'namespace="lms",provider="cloudflare_access"'
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def value(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def figures(served: Served) -> dict[str, float | None]:
    text = served.metrics()
    return {
        "extra": series(text, "vault_drift_audience_extra_member_seconds_total", "lms-instructors"),
        "missing": series(
            text, "vault_drift_audience_missing_member_seconds_total", "lms-instructors"
        ),
        "checked": series(
            text, "vault_drift_audience_last_check_timestamp_seconds", "lms-instructors"
        ),
        "revoked": value(text, f"vault_drift_revocation_duration_seconds_count{{{LMS}}}"),
        "revoked_seconds": value(text, f"vault_drift_revocation_duration_seconds_sum{{{LMS}}}"),
    }


def check_now(served: Served) -> None:
    answer = requests.post(f"{served.url}/iam/drift/check", json={}, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text


def remove_from_group(simulator: CloudflareSimulator, name: str, email: str) -> None:
    """A manual edit in Cloudflare: someone removes ``email`` from the group by hand."""
    client = make_client(simulator)
    gid = next(g["id"] for g in simulator.groups() if g["name"] == name)
    group = client.get_group(gid)
    kept = [r for r in group.include if r.get("email", {}).get("email") != email]
    client.replace_group(type(group)(group.id, group.name, kept))


def test_counters_and_histogram_survive_restarts_without_jump_reset_or_repeat(
    world: Path,  # noqa: F811
    simulator: CloudflareSimulator,
    tmp_path: Path,
) -> None:
    """lms-instructors has 1 extra and 2 missing members from the first check. Across each
    restart the counters neither reset nor jump: they grow by exactly the members' time between
    the last check before and the first check after (as if the exporter had never stopped),
    and an extra member removed while it was down is observed once, never again."""
    first = Served(world, simulator, tmp_path / "serve1.log")
    try:
        time.sleep(2.2)
        check_now(first)  # a second check, so that the counters are past zero
        before = figures(first)
        assert before["extra"] and before["extra"] > 0 and before["revoked"] == 0
        assert before["missing"] == 2 * before["extra"]
        assert first.stop() == 0
    finally:
        first.process.kill()
    time.sleep(1.1)
    # While it is down, someone removes the extra member by hand.
    remove_from_group(simulator, "lms-instructors", "olduser@example.com")
    second = Served(world, simulator, tmp_path / "serve2.log")
    try:
        after = figures(second)
        assert after["checked"] is not None and before["checked"] is not None
        gap = after["checked"] - before["checked"]
        assert gap > 0  # the stop, the pause, the start
        # Extra: counted up to the check that found the member gone, nothing more, nothing less.
        assert after["extra"] == before["extra"] + 1 * gap
        assert after["missing"] == before["missing"] + 2 * gap
        # The revocation, observed once, lasted from the first check to this one.
        assert after["revoked"] == 1
        assert after["revoked_seconds"] == after["extra"]
        print(f"\nrestart figures: before={before} after={after} gap={gap}s")
        assert second.stop() == 0
    finally:
        second.process.kill()
    time.sleep(1.1)
    third = Served(world, simulator, tmp_path / "serve3.log")
    try:
        again = figures(third)
        assert again["revoked"] == 1 and again["revoked_seconds"] == after["revoked_seconds"]
        assert again["extra"] == after["extra"]  # no extra member left: it stands still
        assert again["checked"] is not None and after["checked"] is not None
        assert again["missing"] == after["missing"] + 2 * (again["checked"] - after["checked"])
        print(f"second restart: {again}")
        assert third.stop() == 0
    finally:
        third.process.kill()


def test_a_leaver_removed_from_vault_loses_access_within_one_check_with_no_human(
    world: Path,  # noqa: F811
    simulator: CloudflareSimulator,
    tmp_path: Path,
) -> None:
    served = Served(world, simulator, tmp_path / "serve.log")
    try:
        saved = requests.put(
            f"{served.url}/iam/drift/settings",
            json={"auto_sync": "remove_only"},
            headers=AUTH,
            timeout=10,
        )
        assert saved.status_code == 200
        time.sleep(1.5)  # the watcher has read the memberships once
        with sqlite3.connect(world) as conn:  # vault-api deactivates a leaver
            conn.execute("UPDATE iam_user SET status = 'suspended' WHERE id = 'u-dev3'")
            (last_cycle,) = conn.execute("SELECT max(id) FROM sys_infra_drift_cycle").fetchone()

        def revoked() -> bool:
            group = next(g for g in simulator.groups() if g["name"] == "developers")
            return all(
                r.get("email", {}).get("email") != "dev3@example.com" for r in group["include"]
            )

        wait_for(revoked, 20, "dev3 revoked in Cloudflare")
        dev = 'namespace="dev",provider="cloudflare_access"'
        wait_for(
            lambda: (
                value(served.metrics(), f"vault_drift_revocation_duration_seconds_count{{{dev}}}")
                == 1
            ),
            10,
            "the revocation in the histogram",
        )
        text = served.metrics()
        assert re.search(r'vault_drift_syncs_total\{result="synced",trigger="auto"\} 1\.0', text), (
            "one auto-sync"
        )
        with sqlite3.connect(world) as conn:
            cycles = conn.execute(
                "SELECT trigger, scope FROM sys_infra_drift_cycle WHERE id > ?", (last_cycle,)
            ).fetchall()
            audit = conn.execute(
                "SELECT audience, trigger, actor, mode, removed, result FROM sys_infra_drift_audit"
            ).fetchall()
        assert cycles == [("change", "partial")]  # one check: the one the change triggered
        assert audit == [
            ("developers", "auto", "auto-sync", "remove_only", '["dev3@example.com"]', "synced")
        ]
        assert served.stop() == 0
    finally:
        served.process.kill()
