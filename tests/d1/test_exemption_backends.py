"""Exemptions on the three Vault backends: made, applied, ended and read back after a restart
the same way on a SQLite file, the simulated D1 and workerd's D1."""

from __future__ import annotations

from datetime import timedelta

from support.d1_world import World

from exporter.core.model import Status

AUD = "lms-instructors"


def test_exemptions_persist_across_a_restart_and_keep_their_audit(backend: World) -> None:
    services = backend.services()
    services.cycle.check_all("schedule")
    until = backend.clock() + timedelta(days=7)
    services.exemptions.exempt(AUD, "olduser@example.com", "extra", "break-glass", until, "api:a")
    services.exemptions.exempt(AUD, "alice@example.com", "missing", "later", until, "page:b")
    services.exemptions.exempt(AUD, "bob@example.com", "missing", "later", until, "page:b")
    assert services.snapshots.current.checks[AUD].status is Status.SYNCED

    restarted = backend.services()  # a new process on the same Vault
    [alice, bob, olduser] = restarted.snapshots.current.exemptions_of(AUD, backend.clock())
    assert (olduser.side, olduser.reason, olduser.owner, olduser.expires_at) == (
        "extra",
        "break-glass",
        "api:a",
        until.replace(microsecond=0),
    )
    assert (alice.side, bob.owner) == ("missing", "page:b")
    assert restarted.cycle.check_all("schedule").checks[AUD].status is Status.SYNCED

    backend.clock.advance(hours=1)
    assert restarted.exemptions.end(AUD, "olduser@example.com", "api:a")
    again = backend.services()
    assert len(again.snapshots.current.exemptions_of(AUD, backend.clock())) == 2
    check = again.cycle.check_all("schedule").checks[AUD]
    assert [m.email for m in check.extra] == ["olduser@example.com"]
    rows = backend.sql(
        "SELECT email, end_reason, ended_by FROM sys_infra_drift_exemption ORDER BY id"
    )
    assert rows == [
        ("olduser@example.com", "deleted", "api:a"),
        ("alice@example.com", None, None),
        ("bob@example.com", None, None),
    ]
