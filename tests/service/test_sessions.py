"""Effective removal: the sessions of every leaver end, and only theirs (README).

Against the sample world: a real SQLite Vault and the simulated Cloudflare on loopback, whose
``revoke_user`` records each call and ends the sessions of that email.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support import FixedClock, make_client, require_tool

from exporter.core.model import Status, SyncResultKind
from exporter.core.webhooks import Announcer, destination_key
from exporter.demo.sample import add_member
from exporter.demo.simulator import CloudflareSimulator
from exporter.metrics.sessions import SessionCollector
from exporter.service import Services, assemble
from exporter.service.sessions import SessionRevoker
from exporter.service.syncer import SyncRequest
from exporter.vault import SqliteStore

OLDUSER = "olduser@example.com"  # extra in lms-instructors from the start


@pytest.fixture
def revoker(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> SessionRevoker:
    revoker = SessionRevoker(services.vault, services.cloudflare, clock=clock)
    services.cycle.followers.append(revoker)
    return revoker


def group_id(simulator: CloudflareSimulator, name: str) -> str:
    return next(g["id"] for g in simulator.groups() if g["name"] == name)


def leave_vault(db: Path, email: str) -> None:
    """vault-api's REMOVE_MEMBER: the person leaves every Vault group."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM iam_user_group WHERE user_id = ?", (f"u-{email.split('@')[0]}",))


def rejoin_vault(db: Path, email: str, group_name: str, clock: FixedClock) -> None:
    with sqlite3.connect(db) as conn:
        (group,) = conn.execute("SELECT id FROM iam_group WHERE name = ?", (group_name,)).fetchone()
        add_member(conn, email, group, clock())


def test_a_sync_ends_the_sessions_of_the_members_it_removes(
    services: Services, simulator: CloudflareSimulator, revoker: SessionRevoker, clock: FixedClock
) -> None:
    assert simulator.login(OLDUSER)  # still in the group: Access lets them in
    services.cycle.check_all("schedule")
    clock.advance(minutes=10)

    [outcome] = services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))

    assert outcome.result is SyncResultKind.SYNCED and outcome.removed == (OLDUSER,)
    assert outcome.revoked == (OLDUSER,)
    assert outcome.as_document()["revoked"] == [OLDUSER]
    assert simulator.sessions.revoked_emails() == [OLDUSER]
    assert simulator.sessions.live(OLDUSER) == 0
    assert not simulator.login(OLDUSER)  # out of the group: no new session either
    [record] = services.vault.session_revocations("lms-instructors")
    assert (record.email, record.reason, record.state) == (OLDUSER, "sync", "revoked")
    assert record.access_end_seconds == pytest.approx(600)  # from its first sighting
    totals = revoker.state.totals
    assert totals.counts[("lms", "cloudflare_access", "ok")] == 1 and totals.pending == 0


def test_auto_sync_remove_only_after_a_vault_removal_ends_the_leavers_sessions(
    services: Services,
    simulator: CloudflareSimulator,
    sample_db: Path,
    revoker: SessionRevoker,
) -> None:
    """The notification path: vault-api removes dev1, notifies; remove_only takes dev1 out
    of the group and its sessions end in the same cycle."""
    services.decisions.update_settings({"auto_sync": "remove_only"})
    services.cycle.check_all("schedule")  # auto-sync takes olduser out at once
    assert simulator.sessions.revoked_emails() == [OLDUSER]
    assert simulator.login("dev1@example.com")

    leave_vault(sample_db, "dev1@example.com")
    services.cycle.check_audiences(["developers"], "change")

    assert simulator.sessions.revoked_emails() == [OLDUSER, "dev1@example.com"]
    assert simulator.sessions.live("dev1@example.com") == 0
    [record] = services.vault.session_revocations("developers")
    assert (record.reason, record.state) == ("auto_sync", "revoked")


def test_a_removal_by_someone_else_seen_by_a_check_is_revoked(
    services: Services, simulator: CloudflareSimulator, revoker: SessionRevoker
) -> None:
    services.cycle.check_all("schedule")  # olduser seen extra
    lms = group_id(simulator, "lms-instructors")
    include = simulator.group(lms)["include"]
    simulator.set_include(lms, [r for r in include if r.get("email", {}).get("email") != OLDUSER])

    services.cycle.check_all("schedule")

    assert simulator.sessions.revoked_emails() == [OLDUSER]
    [record] = services.vault.session_revocations("lms-instructors")
    assert (record.reason, record.state) == ("observed_removal", "revoked")


def test_a_vault_api_push_between_two_checks_is_an_observed_removal(
    services: Services,
    simulator: CloudflareSimulator,
    sample_db: Path,
    revoker: SessionRevoker,
    clock: FixedClock,
) -> None:
    """vault-api removes a member from Vault and pushes the removal before any check: no check
    ever saw them extra, but the previous check held them as granted."""
    leaver = "dev1@example.com"
    services.cycle.check_all("schedule")
    assert simulator.login(leaver)
    clock.advance(minutes=3)
    leave_vault(sample_db, leaver)
    developers = group_id(simulator, "developers")
    include = simulator.group(developers)["include"]
    simulator.set_include(
        developers, [r for r in include if r.get("email", {}).get("email") != leaver]
    )

    services.cycle.check_all("schedule")

    assert services.snapshots.current.checks["developers"].status is Status.SYNCED
    assert simulator.sessions.revoked_emails() == [leaver]
    assert simulator.sessions.live(leaver) == 0
    [record] = services.vault.session_revocations("developers")
    assert (record.reason, record.state, record.first_seen_at) == (
        "observed_removal",
        "revoked",
        None,
    )
    clock.advance(minutes=1)
    services.cycle.check_all("schedule")  # read once: not revoked again
    assert len(simulator.sessions.revocations()) == 1


def test_an_email_vault_still_grants_is_never_revoked(
    services: Services, simulator: CloudflareSimulator, revoker: SessionRevoker
) -> None:
    """A member removed by hand while Vault grants it is missing, not a leaver."""
    services.cycle.check_all("schedule")
    developers = group_id(simulator, "developers")
    include = simulator.group(developers)["include"]
    kept = [r for r in include if r.get("email", {}).get("email") != "dev2@example.com"]
    simulator.set_include(developers, kept)

    services.cycle.check_all("schedule")

    assert services.snapshots.current.checks["developers"].status is Status.DRIFT
    assert simulator.sessions.revocations() == []
    assert services.vault.session_revocations("developers") == []


def test_a_pending_revocation_vault_grants_again_is_cancelled_not_sent(
    services: Services,
    simulator: CloudflareSimulator,
    sample_db: Path,
    revoker: SessionRevoker,
    clock: FixedClock,
) -> None:
    simulator.sessions.denied.add("demo-token")
    services.cycle.check_all("schedule")
    services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    assert revoker.state.totals.pending == 1

    rejoin_vault(sample_db, OLDUSER, "Lms Instructors", clock)
    simulator.sessions.denied.clear()
    services.cycle.check_all("schedule")

    assert simulator.sessions.revocations() == []
    [record] = services.vault.session_revocations("lms-instructors")
    assert record.state == "cancelled" and revoker.state.totals.pending == 0


def test_a_refused_token_degrades_to_pending_and_checks_go_on(
    services: Services,
    simulator: CloudflareSimulator,
    revoker: SessionRevoker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.sessions.denied.add("demo-token")
    services.cycle.check_all("schedule")

    [outcome] = services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    services.cycle.check_all("schedule")

    assert outcome.result is SyncResultKind.SYNCED and outcome.revoked == ()
    assert services.snapshots.current.checks["lms-instructors"].status is Status.SYNCED
    assert revoker.state.up is False and revoker.state.totals.pending == 1
    refusals = [r for r in caplog.records if "needs the permission" in r.getMessage()]
    assert len(refusals) == 1
    assert "Access: Organizations, Identity Providers, and Groups Write" in refusals[0].getMessage()

    simulator.sessions.denied.clear()
    services.cycle.check_all("schedule")

    assert simulator.sessions.revoked_emails() == [OLDUSER]
    assert revoker.state.up is True and revoker.state.totals.pending == 0


def test_revocations_survive_a_restart(
    sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    """Recorded before it is sent: a new process sends what the old one could not."""
    first = assemble(SqliteStore(sample_db).open(), make_client(simulator), clock=clock)
    first.cycle.followers.append(SessionRevoker(first.vault, first.cloudflare, clock=clock))
    simulator.sessions.denied.add("demo-token")
    first.cycle.check_all("schedule")
    first.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    simulator.sessions.denied.clear()

    second = assemble(SqliteStore(sample_db).open(), make_client(simulator), clock=clock)
    revoker = SessionRevoker(second.vault, second.cloudflare, clock=clock)
    assert revoker.state.totals.pending == 1
    second.cycle.followers.append(revoker)
    second.cycle.check_all("startup")

    assert simulator.sessions.revoked_emails() == [OLDUSER]
    [record] = second.vault.session_revocations("lms-instructors")
    assert (record.reason, record.state, record.attempts) == ("sync", "revoked", 2)


def test_at_most_max_5_10_percent_of_an_audience_per_cycle(
    services: Services, simulator: CloudflareSimulator, revoker: SessionRevoker
) -> None:
    lms = group_id(simulator, "lms-instructors")
    include = simulator.group(lms)["include"]
    leavers = [f"leaver{i:02d}@example.com" for i in range(12)]
    simulator.set_include(lms, include + [{"email": {"email": e}} for e in leavers])
    services.cycle.check_all("schedule")  # 13 extra members seen
    services.cycle.sync(SyncRequest(["lms-instructors"], force=True, trigger="api", actor="t"))

    assert len(simulator.sessions.revocations()) == 5  # 7 members in Vault: max(5, 0.7)
    services.cycle.check_all("schedule")
    assert len(simulator.sessions.revocations()) == 10
    services.cycle.check_all("schedule")
    assert sorted(simulator.sessions.revoked_emails()) == sorted([*leavers, OLDUSER])
    assert revoker.state.totals.pending == 0


def test_with_revoke_sessions_off_nothing_is_revoked_then_or_later(
    services: Services, simulator: CloudflareSimulator, revoker: SessionRevoker
) -> None:
    services.decisions.update_settings({"revoke_sessions": False})
    services.cycle.check_all("schedule")
    [outcome] = services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    assert outcome.removed == (OLDUSER,) and outcome.revoked == ()

    services.decisions.update_settings({"revoke_sessions": True})
    services.cycle.check_all("schedule")

    assert simulator.sessions.revocations() == []
    assert services.vault.session_revocations() == []


def test_revoked_sessions_are_announced_to_webhooks_with_their_record(
    sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    announcer = Announcer((destination_key("http://127.0.0.1:9/"),), "http://x", lambda: "m1")
    services = assemble(
        SqliteStore(sample_db).open(), make_client(simulator), clock=clock, announcer=announcer
    )
    revoker = SessionRevoker(
        services.vault, services.cloudflare, clock=clock, announcements=services.announcements
    )
    services.cycle.followers.append(revoker)
    services.cycle.check_all("schedule")
    services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))

    rows, _ = services.vault.outbox(10)
    [event] = [json.loads(r.entry.body) for r in rows if r.entry.type == "sessions.revoked"]
    assert event["data"]["emails"] == [OLDUSER] and event["data"]["reason"] == "sync"


def test_the_session_metrics_lint_clean_and_say_what_happened(
    services: Services,
    simulator: CloudflareSimulator,
    revoker: SessionRevoker,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    services.cycle.check_all("schedule")
    clock.advance(minutes=10)
    services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="t"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionCollector(lambda: revoker.state, lambda: True))

    text = generate_latest(registry).decode()

    labels = 'namespace="lms",provider="cloudflare_access"'
    assert f'vault_drift_session_revocations_total{{{labels},result="ok"}} 1.0' in text
    assert f'vault_drift_session_revocations_total{{{labels},result="failed"}} 0.0' in text
    assert "vault_drift_session_revocations_pending 0.0" in text
    assert "vault_drift_session_revoke_up 1.0" in text
    assert "vault_drift_session_revocation_enabled 1.0" in text
    assert f'vault_drift_access_end_duration_seconds_bucket{{le="300.0",{labels}}} 0.0' in text
    assert f'vault_drift_access_end_duration_seconds_bucket{{le="900.0",{labels}}} 1.0' in text
    assert f"vault_drift_access_end_duration_seconds_sum{{{labels}}} 600.0" in text
    assert "@" not in text  # no email in any label
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0 and lint.stdout == lint.stderr == "", lint
