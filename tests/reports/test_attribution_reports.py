"""Who changed it, in the digest and the critical mail: the member's note, in the core's words
with the date of the change (a mail is read later than it is sent)."""

from __future__ import annotations

from pathlib import Path

from support import T0, FixedClock, make_client

from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import assemble
from exporter.vault import SqliteStore
from reports.command import render_digest_file
from reports.notify import critical_alerts
from reports.render import render_critical

SAID = "contractor@example.org (added by jane@corp.example in the dashboard on 2026-11-25 at 10:05 UTC)"


def test_digest_and_critical_mail_say_who_added_a_member_by_hand(
    tmp_path: Path, simulator: CloudflareSimulator
) -> None:
    clock = FixedClock(T0)
    simulator.audit.clock = clock
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    store = SqliteStore(path).open()
    services = assemble(store, make_client(simulator), clock=clock, attribution=True)
    services.checker.check_all()
    clock.advance(minutes=5)
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    include = [*admins["include"], {"email": {"email": "contractor@example.org"}}]
    simulator.set_include(admins["id"], include, by="jane@corp.example")
    clock.advance(minutes=10)
    services.checker.check_all()
    clock.advance(hours=2)  # an exposure turns critical after an hour
    snapshot = services.checker.check_all()

    [alert] = [
        a
        for a in critical_alerts(snapshot, store.episodes_awaiting_critical_mail(), clock())
        if a.audience == "administrators"
    ]
    mail = render_critical(alert, "https://vault-drift.example.com")
    assert f"Extra users: {SAID}" in mail.text
    assert SAID in mail.html

    digest = render_digest_file(store, "1d", "https://vault-drift.example.com", clock())
    assert SAID in digest
