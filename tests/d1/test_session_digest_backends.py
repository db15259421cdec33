"""The digest reads the session revocations alike on a SQLite file, the simulated D1 and
workerd's D1: a leaver's sessions ended within the period, as the store kept them."""

from __future__ import annotations

from support.d1_world import World

from exporter.service.sessions import SessionRevoker
from reports.digest import build_digest
from reports.history import load_history, period_ending

AUD, OLDUSER = "lms-instructors", "olduser@example.com"  # olduser: extra from the start


def test_the_digest_counts_a_leavers_sessions_ended_on_every_backend(backend: World) -> None:
    services = backend.services()
    services.cycle.followers.append(
        SessionRevoker(services.vault, services.cloudflare, clock=backend.clock)
    )
    services.cycle.check_all("schedule")  # olduser seen extra
    group = next(g for g in backend.simulator.groups() if g["name"] == AUD)
    keep = [r for r in group["include"] if r != {"email": {"email": OLDUSER}}]
    backend.simulator.set_include(group["id"], keep, "jane@corp.example")
    backend.clock.advance(minutes=10)
    services.cycle.check_all("schedule")  # seen gone: an observed removal, revoked
    assert backend.simulator.sessions.revoked_emails() == [OLDUSER]

    backend.clock.advance(minutes=5)
    history = load_history(backend.store(), period_ending("1d", backend.clock()))
    rows = history.sessions[["audience", "email", "reason", "state"]].values.tolist()
    assert rows == [[AUD, OLDUSER, "observed_removal", "revoked"]]
    sessions = build_digest(history, backend.clock()).sessions
    assert (sessions.count, sessions.median, sessions.pending) == (1, "10 minutes", 0)
