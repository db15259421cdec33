"""Attribution's persistence on the three Vault backends (file, simulated D1, workerd's D1):
the entries read, how far the log was read, the members' attribution, the manual counts."""

from __future__ import annotations

import json

from support.d1_world import World

from exporter.core.wording import hint
from exporter.service import Services, assemble


def attributed(world: World) -> Services:
    cloudflare = world.cloudflare()
    return assemble(world.store(cloudflare), cloudflare, clock=world.clock, attribution=True)


def audit_requests(world: World) -> int:
    return sum(path.endswith("/audit_logs") for _, path, _ in world.simulator.request_log)


def test_a_manual_edit_is_attributed_and_remembered_on_every_backend(backend: World) -> None:
    backend.simulator.audit.clock = backend.clock  # entries carry the checks' time
    services = attributed(backend)
    services.checker.check_all("cli")
    backend.clock.advance(minutes=10)
    admins = next(g for g in backend.simulator.groups() if g["name"] == "administrators")
    include = [*admins["include"], {"email": {"email": "contractor@example.org"}}]
    backend.simulator.set_include(admins["id"], include, by="jane@corp.example")
    backend.clock.advance(minutes=5)
    snapshot = services.checker.check_all("cli")
    [extra] = snapshot.checks["administrators"].extra
    assert hint(extra, backend.clock()) == "added by jane@corp.example in the dashboard 5 min ago"
    assert snapshot.manual_changes["administrators"] == 1
    stored = backend.sql(
        "SELECT attribution FROM sys_infra_drift_member WHERE email = 'contractor@example.org'"
    )
    assert json.loads(stored[0][0])["actor"] == "jane@corp.example"
    [(source, added)] = backend.sql("SELECT source, added FROM sys_infra_drift_group_change")
    assert (source, json.loads(added)) == ("manual", ["contractor@example.org"])

    read = audit_requests(backend)
    backend.clock.advance(minutes=5)
    again = attributed(backend).checker.check_all("cli")  # a restart: nothing read again
    assert audit_requests(backend) == read
    assert again.checks["administrators"].extra[0].attribution == extra.attribution
    assert again.manual_changes["administrators"] == 1
