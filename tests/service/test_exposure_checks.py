"""Exposure on a real Vault file and the simulated Cloudflare: remove_only auto-sync, the
member-seconds and the revocation histogram across restarts (a restart here is new services
on the same file, as ``serve`` builds them; tests/test_server.py restarts the real process)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import FixedClock, make_client, wait_for

from exporter.core.exposure import LatencyTotals, member_seconds
from exporter.core.model import AutoSync, Status, SyncResultKind
from exporter.demo.simulator import CloudflareSimulator, Faults
from exporter.metrics import ExporterMetrics
from exporter.runtime.watcher import MembershipWatcher
from exporter.service import Services, assemble
from exporter.vault import SqliteStore

LMS = ("lms", "cloudflare_access")


def restart(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    return assemble(SqliteStore(sample_db).open(), make_client(simulator), clock=clock)


def group_emails(simulator: CloudflareSimulator, name: str) -> set[str]:
    group = next(g for g in simulator.groups() if g["name"] == name)
    return {r["email"]["email"].lower() for r in group["include"] if "email" in r}


def extra_seconds(services: Services, audience: str = "lms-instructors") -> float:
    return member_seconds(services.snapshots.current.checks[audience].memory).extra


def lms_revocations(services: Services) -> LatencyTotals:
    return services.snapshots.current.revocations.get(LMS, LatencyTotals())


def audit_modes(sample_db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(sample_db) as conn:
        return conn.execute(
            "SELECT audience, trigger, mode, result FROM sys_infra_drift_audit ORDER BY id"
        ).fetchall()


def test_remove_only_revokes_extra_members_and_never_adds(
    services: Services, sample_db: Path, simulator: CloudflareSimulator
) -> None:
    services.checker.check_all()
    [outcome] = services.syncer.auto_sync(AutoSync.REMOVE_ONLY)
    assert (outcome.audience, outcome.result) == ("lms-instructors", SyncResultKind.SYNCED)
    assert (outcome.added, outcome.removed) == ((), ("olduser@example.com",))
    check = services.snapshots.current.checks["lms-instructors"]
    assert check.status is Status.DRIFT and not check.extra
    assert [m.email for m in check.missing] == ["alice@example.com", "bob@example.com"]
    assert "olduser@example.com" not in group_emails(simulator, "lms-instructors")
    assert "alice@example.com" not in group_emails(simulator, "lms-instructors")
    assert audit_modes(sample_db) == [("lms-instructors", "auto", "remove_only", "synced")]
    assert lms_revocations(services).count == 1
    # Nothing left that remove_only can do: no further sync, no audit row.
    assert services.syncer.auto_sync(AutoSync.REMOVE_ONLY) == []


def test_a_blocked_revocation_is_audited_and_counted(
    sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    counters = ExporterMetrics()
    services = assemble(
        SqliteStore(sample_db).open(), make_client(simulator), clock=clock, events=counters
    )
    gid = next(g for g in simulator.groups() if g["name"] == "administrators")["id"]
    leavers = [{"email": {"email": f"leaver{i}@example.com"}} for i in range(6)]
    client = make_client(simulator)
    group = client.get_group(gid)
    client.replace_group(type(group)(group.id, group.name, [*group.include, *leavers]))
    services.checker.check_all()
    outcomes = {o.audience: o for o in services.syncer.auto_sync(AutoSync.REMOVE_ONLY)}
    assert outcomes["administrators"].result is SyncResultKind.BLOCKED
    assert outcomes["administrators"].blocked_reason == "mass_removal"
    assert len(group_emails(simulator, "administrators")) == 8  # nothing removed
    sample = counters.registry.get_sample_value
    assert sample("vault_drift_syncs_total", {"trigger": "auto", "result": "blocked"}) == 1
    assert sample("vault_drift_syncs_blocked_total", {"reason": "mass_removal"}) == 1
    assert ("administrators", "auto", "remove_only", "blocked") in audit_modes(sample_db)


def test_member_seconds_and_revocations_survive_restarts_exactly_once(
    services: Services, sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    services.checker.check_all()
    clock.advance(minutes=10)
    services.checker.check_all()
    assert extra_seconds(services) == 600
    # Stopped for 15 minutes; meanwhile someone removes the extra member by hand.
    clock.advance(minutes=15)
    gid = next(g for g in simulator.groups() if g["name"] == "lms-instructors")["id"]
    client = make_client(simulator)
    group = client.get_group(gid)
    kept = [r for r in group.include if r.get("email", {}).get("email") != "olduser@example.com"]
    client.replace_group(type(group)(group.id, group.name, kept))
    again = restart(sample_db, simulator, clock)
    again.checker.check_all()
    # The member counted up to the check that found it gone: 25 minutes, seen once.
    assert extra_seconds(again) == 1500
    totals = lms_revocations(again)
    assert (totals.count, totals.seconds) == (1, 1500)
    assert dict(totals.cumulative())["900.0"] == 0 and dict(totals.cumulative())["1800.0"] == 1
    # A second restart neither repeats the revocation nor moves the closed seconds.
    clock.advance(minutes=5)
    third = restart(sample_db, simulator, clock)
    third.checker.check_all()
    assert lms_revocations(third).count == 1
    assert extra_seconds(third) == 1500
    # The missing side kept counting: 2 members for 30 minutes.
    assert member_seconds(third.snapshots.current.checks["lms-instructors"].memory).missing == (
        2 * 30 * 60
    )


def test_a_failed_check_freezes_the_counters_and_the_next_one_catches_up(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    services.checker.check_all()
    clock.advance(minutes=10)
    simulator.faults = Faults(rate_5xx=1.0)
    services.checker.check_all()
    assert services.snapshots.current.checks["lms-instructors"].status is Status.ERROR
    assert extra_seconds(services) == 0  # not observed: not counted yet
    simulator.faults = Faults()
    clock.advance(minutes=5)
    services.checker.check_all()
    assert extra_seconds(services) == 900


def test_a_leaver_loses_access_within_one_change_driven_check(
    services: Services, sample_db: Path, simulator: CloudflareSimulator
) -> None:
    """vault-api removes a leaver from Vault; with remove_only, the check that the change
    triggers revokes them in Cloudflare, with no human involved, and the histogram shows it."""
    services.decisions.update_settings({"auto_sync": "remove_only"})
    services.checker.check_all()
    assert "dev3@example.com" in group_emails(simulator, "developers")
    watcher = MembershipWatcher(
        services.vault, services.cycle, poll_seconds=0.05, debounce_seconds=0
    )
    watcher.start()
    try:
        wait_for(lambda: watcher.reads >= 1, 10, "the watcher's first read")
        with sqlite3.connect(sample_db) as conn:
            conn.execute("UPDATE iam_user SET status = 'suspended' WHERE id = 'u-dev3'")
        wait_for(
            lambda: "dev3@example.com" not in group_emails(simulator, "developers"), 10, "revoke"
        )
    finally:
        watcher.stop()
    check = services.snapshots.current.checks["developers"]
    assert check.status is Status.SYNCED
    dev = services.snapshots.current.revocations[("dev", "cloudflare_access")]
    assert dev.count == 1 and dev.cumulative()[0] == ("60.0", 1)
    assert audit_modes(sample_db)[-1] == ("developers", "auto", "remove_only", "synced")
