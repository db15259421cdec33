"""Exemptions end to end on a real Vault file and the simulated Cloudflare: checks, syncs and
auto-sync never touch an exempt member; expiry (no restart) makes it drift again from its end;
the rows are the audit of who made and ended each one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support import FixedClock, make_client

from exporter.core.model import AutoSync, Status
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import Services, assemble
from exporter.service.checker import UnknownAudience
from exporter.service.exemptions import ExemptionError
from exporter.service.sessions import SessionRevoker
from exporter.service.syncer import SyncRequest
from exporter.vault import SqliteStore

AUD = "lms-instructors"  # the sample: alice and bob missing, olduser extra
OLDUSER = "olduser@example.com"


def emails_of(simulator: CloudflareSimulator) -> set[str]:
    group = next(g for g in simulator.groups() if g["name"] == AUD)
    return {r["email"]["email"].lower() for r in group["include"] if "email" in r}


def exempt_all(services: Services, clock: FixedClock, hours: float = 24) -> None:
    until = clock() + timedelta(hours=hours)
    ex = services.exemptions
    ex.exempt(AUD, "OldUser@example.com", "extra", "break-glass", until, "api:admin")
    ex.exempt(AUD, "alice@example.com", "missing", "kept out for now", until, "api:admin")
    ex.exempt(AUD, "bob@example.com", "missing", "kept out for now", until, "page:admin")


def test_an_audience_drifting_only_by_exempt_members_is_synced_at_once(
    services: Services, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    assert services.snapshots.current.checks[AUD].status is Status.DRIFT
    exempt_all(services, clock)  # each one re-checks the audience
    check = services.snapshots.current.checks[AUD]
    assert check.status is Status.SYNCED
    assert check.exempt == {
        ("extra", "olduser@example.com"),
        ("missing", "alice@example.com"),
        ("missing", "bob@example.com"),
    }
    assert [e.owner for e in services.snapshots.current.exemptions_of(AUD, clock())] == [
        "api:admin",
        "page:admin",
        "api:admin",
    ]


def test_no_sync_or_auto_sync_adds_or_removes_an_exempt_member(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    until = clock() + timedelta(days=2)
    services.exemptions.exempt(AUD, "olduser@example.com", "extra", "why", until, "api:admin")
    services.exemptions.exempt(AUD, "bob@example.com", "missing", "why", until, "api:admin")
    [outcome] = services.cycle.sync(SyncRequest([AUD], actor="api:admin"))
    assert (outcome.added, outcome.removed) == (("alice@example.com",), ())
    assert "olduser@example.com" in emails_of(simulator)
    assert "bob@example.com" not in emails_of(simulator)
    assert services.snapshots.current.checks[AUD].status is Status.SYNCED
    services.decisions.update_settings({"auto_sync": str(AutoSync.FULL)})
    before = simulator.request_count
    services.cycle.check_all("schedule")
    assert services.syncer.auto_sync(AutoSync.FULL) == []  # nothing to heal
    assert [e[0] for e in simulator.request_log[before:]] == ["GET", "GET"]  # no PUT
    [forced] = services.cycle.sync(SyncRequest([AUD], force=True, actor="api:admin"))
    assert (forced.added, forced.removed) == ((), ())


def test_expiry_needs_no_restart_and_the_member_drifts_again_from_its_end(
    services: Services, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    exempt_all(services, clock, hours=2)
    clock.advance(hours=2, minutes=3)
    assert services.exemptions.expire_due() == 3  # the scheduler's job: marks, re-checks
    check = services.snapshots.current.checks[AUD]
    assert check.status is Status.DRIFT and check.exempt == frozenset()
    end = clock() - timedelta(minutes=3)
    assert {m.first_seen_at for m in (*check.missing, *check.extra)} == {end}
    assert check.drift_since == end
    assert services.exemptions.expire_due() == 0
    ended = services.vault.exemption_log(AUD)
    assert {(e.end_reason, e.ended_by, e.ended_at) for e in ended} == {("expired", "expiry", end)}


def test_deleting_ends_it_now_and_is_audited(services: Services, clock: FixedClock) -> None:
    services.cycle.check_all("schedule")
    exempt_all(services, clock)
    clock.advance(minutes=30)
    assert services.exemptions.end(AUD, "OLDUSER@example.com", "api:admin")
    assert not services.exemptions.end(AUD, "olduser@example.com", "api:admin")
    check = services.snapshots.current.checks[AUD]
    assert [(m.email, m.first_seen_at) for m in check.extra] == [("olduser@example.com", clock())]
    [row] = [e for e in services.vault.exemption_log(AUD) if e.end_reason]
    assert (row.email, row.end_reason, row.ended_by, row.ended_at) == (
        "olduser@example.com",
        "deleted",
        "api:admin",
        clock(),
    )


def test_a_new_exemption_replaces_the_one_in_force(services: Services, clock: FixedClock) -> None:
    services.cycle.check_all("schedule")
    until = clock() + timedelta(days=1)
    services.exemptions.exempt(AUD, "olduser@example.com", "extra", "first", until, "api:admin")
    services.exemptions.exempt(AUD, "olduser@example.com", "extra", "second", until, "api:admin")
    [current] = services.snapshots.current.exemptions_of(AUD, clock())
    assert current.reason == "second"
    assert [e.end_reason for e in services.vault.exemption_log(AUD)] == [None, "replaced"]


def test_invalid_or_unknown_is_refused_and_nothing_is_written(
    services: Services, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    with pytest.raises(UnknownAudience):
        services.exemptions.exempt("nope", "a@x.com", "extra", "r", clock(), "api:admin")
    with pytest.raises(ExemptionError) as refused:
        services.exemptions.exempt(
            AUD, "a@x.com", "extra", "r", clock() + timedelta(days=91), "api:admin"
        )
    assert refused.value.problems == ["expires_at: an exemption lasts at most 90 days"]
    assert services.vault.exemption_log() == []


def test_exemptions_survive_a_restart_and_a_one_shot_sync_honours_them(
    services: Services, sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    exempt_all(services, clock)
    restarted = assemble(SqliteStore(sample_db).open(), make_client(simulator), clock=clock)
    assert len(restarted.snapshots.current.exemptions_of(AUD, clock())) == 3
    [outcome] = restarted.syncer.sync(SyncRequest([AUD], actor="cli"))  # no check first
    assert (str(outcome.result), outcome.added, outcome.removed) == ("noop", (), ())
    assert restarted.checker.check_all("schedule").checks[AUD].status is Status.SYNCED


def test_session_revocation_can_ask_whether_a_member_is_exempt(
    services: Services, clock: FixedClock
) -> None:
    services.cycle.check_all("schedule")
    exempt_all(services, clock, hours=1)
    snapshot = services.snapshots.current
    assert snapshot.is_exempt(AUD, "OldUser@Example.com", clock())
    assert not snapshot.is_exempt("developers", "olduser@example.com", clock())
    assert not snapshot.is_exempt(AUD, "olduser@example.com", clock() + timedelta(hours=1))


def test_no_session_of_an_exempt_member_is_revoked(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    revoker = SessionRevoker(services.vault, services.cloudflare, clock=clock)
    services.cycle.followers.append(revoker)
    services.cycle.check_all("schedule")  # olduser seen extra
    until = clock() + timedelta(days=1)
    services.exemptions.exempt(AUD, "olduser@example.com", "extra", "break-glass", until, "api:a")
    lms = next(g["id"] for g in simulator.groups() if g["name"] == AUD)
    include = simulator.group(lms)["include"]
    simulator.set_include(lms, [r for r in include if r.get("email") != {"email": OLDUSER}])
    services.cycle.check_all("schedule")  # removed by hand while exempt: not a leaver
    assert simulator.sessions.revocations() == []
    assert services.vault.session_revocations(AUD) == []


def test_a_pending_revocation_of_a_member_exempted_since_is_cancelled(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    revoker = SessionRevoker(services.vault, services.cloudflare, clock=clock)
    services.cycle.followers.append(revoker)
    simulator.sessions.denied.add("demo-token")  # revocations stay pending
    services.cycle.check_all("schedule")
    lms = next(g["id"] for g in simulator.groups() if g["name"] == AUD)
    include = simulator.group(lms)["include"]
    simulator.set_include(lms, [r for r in include if r.get("email") != {"email": OLDUSER}])
    services.cycle.check_all("schedule")
    assert revoker.state.totals.pending == 1
    until = clock() + timedelta(days=1)
    # Let back in by hand, and exempted: its pending revocation must not be sent.
    simulator.set_include(lms, include)
    services.exemptions.exempt(AUD, OLDUSER, "extra", "break-glass", until, "api:a")
    simulator.sessions.denied.clear()
    services.cycle.check_all("schedule")
    assert simulator.sessions.revocations() == []
    [record] = services.vault.session_revocations(AUD)
    assert record.state == "cancelled"
