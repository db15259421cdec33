"""Who changed it, end to end: checks on a real Vault file against the simulated Cloudflare,
whose audit log records every API write (with the token's actor) and every dashboard edit."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import T0, FixedClock, make_client

from exporter.cloudflare.wire import CloudflareError
from exporter.core.model import DriftMember, Group
from exporter.core.wording import hint
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_audit import Actor
from exporter.service import Services, assemble
from exporter.service.syncer import SyncRequest
from exporter.vault import SqliteStore

VAULT_API = Actor("vault-api@svc.example", id="a-vault-api")
JANE = "jane@corp.example"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def simulator(clock: FixedClock) -> Iterator[CloudflareSimulator]:
    """The audit log's clock is the test's: entries land where the checks look for them."""
    sim = CloudflareSimulator(
        per_page_cap=50, tokens={"vault-api-token": VAULT_API}, wall_clock=clock
    ).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sample_db(tmp_path: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Path:
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    return path


def wired(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    return assemble(
        SqliteStore(sample_db).open(),
        make_client(simulator),
        clock=clock,
        attribution=True,
        vault_api_actors=[VAULT_API.email.upper()],
    )


@pytest.fixture
def services(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    return wired(sample_db, simulator, clock)


def group(simulator: CloudflareSimulator, name: str) -> dict:  # type: ignore[type-arg]
    return next(g for g in simulator.groups() if g["name"] == name)


def audit_requests(simulator: CloudflareSimulator) -> int:
    return sum(path.endswith("/audit_logs") for _, path, _ in simulator.request_log)


def member(services: Services, audience: str, email: str) -> DriftMember:
    check = services.snapshots.current.checks[audience]
    return next(m for m in (*check.missing, *check.extra) if m.email == email)


def rule(email: str) -> dict[str, dict[str, str]]:
    return {"email": {"email": email}}


def settle(services: Services, clock: FixedClock) -> None:
    """A first check (its drift looked up once), then 15 minutes."""
    services.checker.check_all()
    clock.advance(minutes=15)


def test_a_manual_add_and_a_manual_removal_are_attributed(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    settle(services, clock)
    admins = group(simulator, "administrators")
    clock.advance(minutes=2)
    include = [r for r in admins["include"] if r != rule("root@example.com")]
    simulator.set_include(admins["id"], [*include, rule("contractor@example.org")], by=JANE)
    clock.advance(minutes=13)
    snapshot = services.checker.check_all()

    added = member(services, "administrators", "contractor@example.org")
    removed = member(services, "administrators", "root@example.com")
    assert hint(added, clock()) == f"added by {JANE} in the dashboard 13 min ago"
    assert hint(removed, clock()) == f"removed by {JANE} in the dashboard 13 min ago"
    assert added.attribution is not None and added.attribution.changed_by is not None
    assert added.attribution.changed_by.audit_log_id == simulator.audit.entries()[-1]["id"]
    assert snapshot.manual_changes["administrators"] == 1
    assert snapshot.attribution_up is True
    # the words reach what reports read: the member's note, persisted
    with sqlite3.connect(services.vault.path) as conn:  # type: ignore[attr-defined]
        notes = dict(
            conn.execute(
                "SELECT email, note FROM sys_infra_drift_member WHERE audience='administrators'"
            )
        )
    assert notes["contractor@example.org"].startswith(f"added by {JANE} in the dashboard on ")


def test_the_exporters_own_sync_and_vault_apis_writes_are_not_manual(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock, sample_db: Path
) -> None:
    settle(services, clock)
    services.syncer.sync(SyncRequest(["lms-instructors"], actor="test"))  # adds alice and bob
    clock.advance(minutes=5)
    # Vault drops bob before the next check: the sync's entry is what put him in the group
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM iam_user_group WHERE user_id = 'u-bob'")
    # vault-api takes ops out of the administrators' group with its own token, Vault unchanged
    admins = group(simulator, "administrators")
    keep = [r for r in admins["include"] if r != rule("ops@example.com")]
    vault_api = make_client(simulator, token="vault-api-token")
    vault_api.replace_group(Group(admins["id"], admins["name"], keep, [], [], False))
    clock.advance(minutes=10)
    snapshot = services.checker.check_all()

    bob = member(services, "lms-instructors", "bob@example.com")
    ops = member(services, "administrators", "ops@example.com")
    assert hint(bob, clock()) == "added by vault-drift's own sync 15 min ago"
    assert hint(ops, clock()) == "removed with API token vault-api 10 min ago"
    assert snapshot.manual_changes == {name: 0 for name in snapshot.checks}
    with sqlite3.connect(sample_db) as conn:
        sources = [
            row[0] for row in conn.execute("SELECT source FROM sys_infra_drift_group_change")
        ]
    assert sorted(sources) == ["exporter", "vault-api"]


def test_a_token_without_audit_rights_turns_attribution_off_and_leaves_drift_alone(
    services: Services,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.audit_denied.add("demo-token")
    caplog.set_level(logging.WARNING, "vault_drift.attribution")
    first = services.checker.check_all()
    clock.advance(minutes=15)
    admins = group(simulator, "administrators")
    simulator.set_include(admins["id"], [*admins["include"], rule("x@example.org")], by=JANE)
    second = services.checker.check_all()

    assert first.attribution_up is False and second.attribution_up is False
    assert audit_requests(simulator) == 1  # asked once, never again
    assert len([r for r in caplog.records if "attribution off" in r.getMessage()]) == 1
    assert {n: str(c.status) for n, c in second.checks.items()} == {
        "administrators": "drift",
        "developers": "synced",
        "lms-instructors": "drift",
        "lms-viewer": "pending",
        "sales-team": "error",
    }
    assert "manually added?" in hint(member(services, "administrators", "x@example.org"))


def test_entries_whose_values_cannot_be_read_name_nobody(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    settle(services, clock)
    admins = group(simulator, "administrators")
    for mode, email in (("truncated", "t@example.org"), ("not_json", "n@example.org")):
        simulator.audit.values = mode
        simulator.set_include(admins["id"], [*group(simulator, "administrators")["include"], rule(email)], by=JANE)  # fmt: skip
    simulator.audit.values = "missing"
    simulator.set_include(admins["id"], [*group(simulator, "administrators")["include"], rule("m@example.org")], by=JANE)  # fmt: skip
    clock.advance(minutes=15)
    first = services.checker.check_all()
    assert "manually added?" in hint(member(services, "administrators", "m@example.org"))
    clock.advance(minutes=15)  # read past their first sighting: now "no entry" can be said
    snapshot = services.checker.check_all()

    assert first.manual_changes["administrators"] == 3  # edits by hand, whoever they added
    for email in ("t@example.org", "n@example.org", "m@example.org"):
        found = member(services, "administrators", email)
        assert found.attribution is not None and found.attribution.changed_by is None
        assert hint(found, clock()).endswith("no audit entry names them")
    assert str(snapshot.checks["administrators"].status) == "drift"
    assert snapshot.manual_changes["administrators"] == 3  # each entry counted once


def test_at_most_one_listing_per_cycle_and_nothing_is_read_twice(
    services: Services,
    simulator: CloudflareSimulator,
    clock: FixedClock,
    sample_db: Path,
) -> None:
    simulator.audit.per_page_cap = 2  # pages of 2 entries: the listing follows them
    settle(services, clock)
    before = audit_requests(simulator)
    for name in ("administrators", "developers"):
        found = group(simulator, name)
        for i in range(3):
            include = [*group(simulator, name)["include"], rule(f"{name}{i}@example.org")]
            simulator.set_include(found["id"], include, by=JANE)
    clock.advance(minutes=15)
    services.checker.check_all()
    # one listing for both groups' six entries: three pages of two (result_info.total_pages)
    listing = audit_requests(simulator) - before
    assert listing == 3
    assert member(services, "developers", "developers2@example.org").attribution.outcome == "found"  # type: ignore[union-attr]

    clock.advance(minutes=15)
    services.checker.check_all()  # nothing new drifts: nothing read
    restarted = wired(sample_db, simulator, clock)
    restarted.checker.check_all()  # a restart remembers what was read and found
    assert audit_requests(simulator) - before == listing
    assert member(restarted, "administrators", "administrators0@example.org").attribution == (
        member(services, "administrators", "administrators0@example.org").attribution
    )


def test_a_drift_older_than_the_logs_reach_says_so_without_reading_it(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock, sample_db: Path
) -> None:
    settle(services, clock)
    settle(services, clock)  # the first check's drift looked up to the end of its window
    with sqlite3.connect(sample_db) as conn:  # olduser has been extra for 19 months, unknown why
        conn.execute(
            "UPDATE sys_infra_drift_member SET first_seen_at = '2025-04-01T00:00:00Z',"
            " attribution = '{\"outcome\":\"pending\"}' WHERE email = 'olduser@example.com'"
        )
    before = audit_requests(simulator)
    services.checker.check_all()
    olduser = member(services, "lms-instructors", "olduser@example.com")
    assert hint(olduser, clock()) == (
        "in Cloudflare but not in Vault: no audit entry found (older than the audit log's 18 months)"
    )
    assert audit_requests(simulator) == before


class BrokenLog:
    """An audit log whose every answer is a page cut short (what the reader raises then)."""

    def __init__(self) -> None:
        self.calls = 0

    def group_changes(self, since: object, before: object, group_ids: object) -> None:
        self.calls += 1
        raise CloudflareError("invalid JSON in response", status=200, request="GET /audit_logs")


def test_a_malformed_answer_never_fails_a_check_and_the_next_cycle_tries_again(
    services: Services, clock: FixedClock
) -> None:
    attributor = services.checker.attribution
    assert attributor is not None
    attributor.reader = BrokenLog()  # type: ignore[assignment]
    first = services.checker.check_all()
    clock.advance(minutes=15)
    second = services.checker.check_all()
    assert first.cycle_error is None and second.cycle_error is None
    assert first.attribution_up is False and attributor.enabled  # not off: tried again
    assert attributor.reader.calls == 2  # type: ignore[attr-defined]
    assert str(second.checks["lms-instructors"].status) == "drift"
